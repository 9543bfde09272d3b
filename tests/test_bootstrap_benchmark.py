"""``python -m benchmarks.bootstrap``: the numpy statistics give scikit-learn's intervals on the same draws."""

from __future__ import annotations


def test_the_bootstrap_benchmark_prints_both_sides_and_they_agree(capsys):
    from benchmarks import bootstrap

    bootstrap.main(["--resamples", "5", "--images", "60", "--lesions", "40"])
    printed = capsys.readouterr().out
    assert "| scikit-learn (baseline) |" in printed and "| model.metrics (numpy) |" in printed
    assert float(printed.rsplit("interval ends: ", 1)[1]) < 1e-12
