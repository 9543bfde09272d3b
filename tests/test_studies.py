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
