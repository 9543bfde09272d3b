"""The study registry: one subcommand per study, generated; commands that edit JSON load no Keras."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_study_is_a_subcommand_named_in_the_help(capsys):
    import training.__main__ as cli
    from training.studies import STUDIES

    for name, study in STUDIES.items():
        assert f"python -m training {name} " in cli.__doc__, name
        with pytest.raises(SystemExit) as stop:
            cli.main([name, "--help"])
        assert stop.value.code == 0
        printed = capsys.readouterr().out
        assert f"python -m training {name}" in printed and repr(study.key) in printed
        assert ("--images" in printed) == study.sampled
        study.loaded()  # the module and function it names exist
        assert callable(getattr(study.loaded(), study.function))


def test_a_study_without_data_says_what_is_missing(capsys):
    import training.__main__ as cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["robustness", "model/shipped"])
    assert stop.value.code == 2 and "--data" in capsys.readouterr().err


def test_editing_a_card_loads_neither_keras_nor_tensorflow(tmp_path):
    card = tmp_path / "model_card.json"
    shutil.copy(ROOT / "model" / "shipped" / "model_card.json", card)
    code = ("import sys; from training.__main__ import main; "
            f"main(['card', {str(card)!r}, '--add', {str(card)!r}]); "
            "loaded = [m for m in ('keras', 'tensorflow') if m in sys.modules]; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, timeout=120)
    assert (tmp_path / "MODEL_CARD.md").is_file()


def test_every_study_s_section_is_in_a_card_every_study_has_measured():
    """The shipped card has been through every study: each declared key is one of its sections."""
    from model.card import read_json
    from training.studies import STUDIES

    card = read_json(ROOT / "model" / "shipped")
    assert {name: s.key for name, s in STUDIES.items() if s.key not in card} == {}


def test_a_study_that_writes_another_section_than_it_declares_is_stopped(tmp_path, monkeypatch):
    from dataclasses import replace

    from model.card import read_json
    from training.studies import STUDIES

    export = tmp_path / "export"
    shutil.copytree(ROOT / "model" / "shipped", export, ignore=shutil.ignore_patterns("*.npz", "*.png", "*.csv"))
    study = STUDIES["robustness"]
    module = study.loaded()
    monkeypatch.setattr(module, study.function, lambda export_dir, data, seed=0: read_json(export_dir)["robustness"])
    assert study.measure(str(export), "unused") == read_json(export)["robustness"]  # as declared: passes
    with pytest.raises(RuntimeError, match="declares section 'intervals'"):
        replace(study, key="intervals").measure(str(export), "unused")
