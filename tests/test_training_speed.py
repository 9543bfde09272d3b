"""``python -m benchmarks.training_speed``: a missing backend is reported, not a crash; the online teacher is timed.

JAX and PyTorch are not in the requirements, so on CI they are absent; no timing is tested here.
"""

from __future__ import annotations

import json

from benchmarks import training_speed


def _missing(monkeypatch, *modules: str) -> None:
    real = training_speed.importlib.util.find_spec
    monkeypatch.setattr(training_speed.importlib.util, "find_spec",
                        lambda name, *a: None if name in modules else real(name, *a))

    def no_child(*args, **kwargs):
        raise AssertionError("no child process for a missing backend")

    monkeypatch.setattr(training_speed.subprocess, "Popen", no_child)


def test_a_missing_backend_is_reported_as_not_installed_without_starting_a_child(monkeypatch, capsys):
    _missing(monkeypatch, "jax", "torch")
    training_speed.main(["--backends", "jax,torch", "--steps", "1"])
    out = capsys.readouterr().out
    assert "| JAX | not installed | - | - | - |" in out
    assert "| PyTorch | not installed | - | - | - |" in out


def test_the_child_answers_not_installed_too(monkeypatch, capsys):
    _missing(monkeypatch, "jax")
    training_speed.main(["--serve", "jax"])
    assert json.loads(capsys.readouterr().out) == {"error": "not installed"}


def test_speeds_are_relative_to_tensorflow():
    rows = [{"backend": "tensorflow", "version": "2", "jit_compile": False, "images_per_s": 10.0},
            {"backend": "jax", "version": "0.1", "jit_compile": True, "images_per_s": 13.0},
            {"backend": "torch", "error": "failed: boom"}]
    table = training_speed.backend_table(rows)
    assert "| TensorFlow | 2 | False | 10.0 | 1.00x |" in table
    assert "| JAX | 0.1 | True | 13.0 | 1.30x |" in table
    assert "| PyTorch | failed: boom | - | - | - |" in table


def test_the_online_teacher_s_cost_is_timed_beside_the_student_s_step(run_with_extra, capsys):
    from model import load_classifier

    export = str(run_with_extra / "export")
    height, width = load_classifier(export).input_size
    training_speed.main(["--teacher", f"{export}+{export}", "--size", f"{height}x{width}", "--batch-size", "4",
                         "--steps", "2"])
    rows = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and not line.startswith("| what")}
    assert set(rows) == {"student step", "teacher's answers", "both, one after the other"}
    assert rows["both, one after the other"] < min(rows["student step"], rows["teacher's answers"])
