"""The colour-preprocessing probe (training/probe.py): a linear probe on frozen features per variant."""

from __future__ import annotations

import json


def test_colour_probe_scores_every_variant(ham_folder, tmp_path):
    from training.network import COLOUR
    from training.probe import probe

    results = probe(str(ham_folder), str(tmp_path / "probe"))
    assert set(results) == set(COLOUR)
    for figures in results.values():
        assert 0 <= figures["balanced_accuracy"] <= 1
    assert json.loads((tmp_path / "probe" / "probe.json").read_text())["results"] == results
