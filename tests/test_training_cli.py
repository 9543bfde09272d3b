"""`python -m training`: the default command trains the shipped recipe; --help documents every option."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import pytest

from tests.conftest import ROOT

NOT_RECIPE = {"data", "out", "weights", "command", "workers", "limit"}  # where and how fast, not what is trained


def test_the_default_command_trains_the_shipped_recipe():
    from training.__main__ import train_parser
    from training.config import Config, before_options

    args = train_parser().parse_args(["--data", "../shared/data/ham10000", "--out", "runs/mine"])  # as the README
    trained = {k: v for k, v in asdict(Config(**vars(args))).items() if k not in NOT_RECIPE}
    card = json.loads((ROOT / "model/shipped/model_card.json").read_text())
    shipped = {**before_options(), **card["training"]["config"]}  # options newer than the card: what it did
    shipped = {k: tuple(v) if isinstance(v, list) else v for k, v in shipped.items() if k in trained}
    assert trained == shipped


def test_an_option_newer_than_an_old_run_reads_as_what_runs_did_before_it():
    """The shipped recipe's vignette is a default now, but runs before it had none."""
    from training.recipes import ablation
    from training.train import Config

    best = {"val_balanced_accuracy": 0.7, "val_macro_auc": 0.9, "phase": "finetune", "epoch": 3}
    old = {"name": "v3", "config": {"finetune_lr": 1e-4}, "best": best}  # predates --vignette
    rows = ablation(Config(data="", out="runs/new"), best, [old])
    assert rows[1]["differs"] == {"vignette": 0.0}


@pytest.mark.parametrize("command", [[], ["evaluate"], ["card"], ["flags"], ["robustness"], ["intervals"],
                                     ["compare"], ["explanations"], ["probe"], ["examples"]])
def test_help_shows_a_default_for_every_option_and_no_tensorflow_noise(command):
    result = subprocess.run([sys.executable, "-m", "training", *command, "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # TensorFlow's start-up lines would land here
    options = result.stdout.split("options:", 1)[1]
    entries = [e for e in options.split("\n  -")[1:] if not e.startswith("h, --help")]
    assert entries
    for entry in entries:
        text = " ".join(entry.split())
        assert "(default:" in text or "(required)" in text, text
    if not command:
        assert "--vignette VIGNETTE" in options and "(default: 0.3)" in " ".join(options.split())


def test_the_cards_recipe_sentence_is_generated_from_the_options_that_are_on():
    from dataclasses import fields

    from training.config import Config, compared_options, recipe_phrases

    defaults = asdict(Config(data="", out="runs/x"))
    assert recipe_phrases(defaults) == ["class-balanced loss weights",
                                        "random dermatoscope vignettes on 30% of training images"]
    on = recipe_phrases({**defaults, "lesion_crop": 0.75, "cast": 0.2, "vignette": 0.0, "mix": "cutmix"})
    assert "crops around the lesion box at a random zoom of 75%-100% of the side (from a 1.5x copy)" in on
    assert "random exposure and colour casts (gains 0.80-1.20)" in on and not any("vignette" in p for p in on)
    assert any(p.startswith("CutMix") and p.endswith("on 50% of training images") for p in on)
    assert recipe_phrases({"finetune_lr": 1e-4})[1:] == []  # an old run's config: no vignettes then
    # the recipe table compares what is trained, not where the files are, how many threads decode them or how
    # finely the card's intervals are resampled
    assert compared_options() == {f.name for f in fields(Config)} - {"data", "out", "weights", "workers", "command",
                                                                             "keep_epochs", "resamples"}


def test_every_subcommand_has_its_subparser_and_evaluate_keeps_its_old_flag_name():
    import training.__main__ as cli
    from training.studies import STUDIES

    parser, runners = cli.command_parser()
    assert set(runners) == set(cli.SUBCOMMANDS) | set(STUDIES)
    for name in cli.SUBCOMMANDS:
        assert f"python -m training {name} " in cli.__doc__, name
    assert set(cli.command_parser(["card"])[1]) == {"card"}  # a run builds only its own command
    new, old = (parser.parse_args(["evaluate", "runs/x", flag, "a", "b"]) for flag in ("--recipes", "--compare"))
    assert new.recipes == old.recipes == ["a", "b"]


BLOCK_KERAS = '''
import sys

class _Missing:  # as after `pip install -r requirements.txt` alone: no Keras, no TensorFlow
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("keras", "tensorflow"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, _Missing())
'''


def test_training_without_the_dev_requirements_says_what_to_install(tmp_path):
    """Issue 31: the README's training command ended in a ModuleNotFoundError traceback on a serving install."""
    import os

    (tmp_path / "sitecustomize.py").write_text(BLOCK_KERAS)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "training", "--data", str(tmp_path / "ham"), "--out",
                             str(tmp_path / "run")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("pip install -r requirements-dev.txt")
    assert "needs keras" in result.stderr or "needs tensorflow" in result.stderr


def test_the_resample_counts_written_out_for_a_quick_help_are_the_project_s():
    """Config and the judge write the bootstrap's count out rather than import model.metrics (scikit-learn)."""
    from model.metrics import RESAMPLES
    from training.__main__ import command_parser
    from training.config import Config

    parser, _ = command_parser(["judge"])
    args = parser.parse_args(["judge", "--baseline", "a", "--candidate", "b", "--data", "d"])
    assert Config(data="", out="").resamples == args.resamples == RESAMPLES
