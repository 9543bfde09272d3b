"""``python -m training soup``: the uniform average of runs' best weights, as a run of its own.

The members are made here, not trained: two networks of one architecture with different random
weights, each in a run folder with the same split, so the soup's arithmetic and its card can be
checked exactly and fast.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SIZE = (64, 80)


def make_member(root: Path, name: str, data: Path, seed: int, **options) -> Path:
    """A finished-looking run folder: config, the lesion-grouped split, random best weights, state."""
    import keras

    from training.config import Config
    from training.data import read_split
    from training.network import build_network

    out = root / name
    out.mkdir(parents=True)
    config = Config(data=str(data), out=str(out), size=SIZE, workers=2, resamples=200,
                    command=f"python -m training {name}",
                    **options)
    (out / "config.json").write_text(json.dumps(asdict(config)))
    read_split(data).to_csv(out / "split.csv", index=False)
    keras.utils.set_random_seed(seed)
    build_network(SIZE, weights=None).save_weights(out / "best.weights.h5")
    best = {"phase": "finetune", "epoch": 1, "val_balanced_accuracy": 0.5, "val_macro_auc": 0.5}
    (out / "state.json").write_text(json.dumps({"history": [], "phases_done": ["head", "finetune"], "best": best,
                                                "seconds": 60.0 * (seed + 1)}))
    return out


def weights_of(run: Path) -> list[np.ndarray]:
    from training.network import build_network

    network = build_network(SIZE, weights=None)
    network.load_weights(run / "best.weights.h5")
    return network.get_weights()


@pytest.fixture(scope="module")
def members(ham_folder, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("members")
    return [make_member(root, "a", ham_folder, 0), make_member(root, "b", ham_folder, 1, levels=0.3)]


@pytest.fixture(scope="module")
def soup(members, tmp_path_factory) -> tuple[Path, dict]:
    """``python -m training soup a b --out soup``, and the card it wrote."""
    from training.__main__ import main as training_cli

    out = tmp_path_factory.mktemp("soup") / "soup"
    training_cli(["soup", *map(str, members), "--out", str(out), "--recipes", str(members[0])])
    return out, json.loads((out / "export/model_card.json").read_text())


def test_the_soup_holds_the_mean_of_its_members_weights(members, soup):
    a, b = (weights_of(m) for m in members)
    mean = weights_of(soup[0])
    assert len(mean) == len(a)
    moved = [not np.allclose(x, y) for x, y in zip(a, b, strict=True)]
    assert sum(moved) > 40  # every kernel differs (batch norm starts equal), so the check below could fail
    for x, y, m in zip(a, b, mean, strict=True):
        np.testing.assert_allclose(m, (x + y) / 2, rtol=1e-6, atol=1e-7)


def test_the_soup_is_exported_and_its_card_names_its_members_and_what_they_differ_in(members, soup):
    from model import load_classifier

    out, card = soup
    assert card["training"]["config"]["soup"] == "a+b"
    assert card["training"]["soup"]["members"] == ["a", "b"]
    assert card["training"]["soup"]["differ"] == {"levels": {"a": 0.0, "b": 0.3}}
    assert card["training"]["train_seconds"] == pytest.approx(180.0)  # the members' training, summed
    assert card["training"]["best_epoch"]["phase"] == "soup"
    rows = {r["run"]: r for r in card["ablation"]}
    assert rows["a"]["differs"] == {"soup": ""}  # beside a member, the soup differs in being one
    markdown = (out / "export/MODEL_CARD.md").read_text()
    assert "uniform average of the weights of a, b (a model soup" in markdown
    assert "levels: a 0.0, b 0.3" in markdown and "`python -m training a`" in markdown
    assert '"soup N" counts its members' in markdown  # the recipe table says what its soup row means
    probs = load_classifier(out / "export").predict([np.zeros((150, 200, 3), np.uint8)])
    assert probs.shape == (1, 7) and abs(probs.sum() - 1) < 1e-5


def test_runs_that_do_not_share_network_split_or_frozen_batch_norm_are_refused(members, ham_folder, tmp_path):
    from training.averaging import average_weights
    from training.soup import check_members, make_soup

    other_dropout = make_member(tmp_path, "drop", ham_folder, 2, dropout=0.5)
    with pytest.raises(ValueError, match="dropout"):
        check_members([members[0], other_dropout])
    bn = make_member(tmp_path, "bn", ham_folder, 3, train_bn=True)
    with pytest.raises(ValueError, match="train_bn"):
        check_members([members[0], bn])
    other_split = Path(shutil.copytree(members[1], tmp_path / "resplit"))
    split = pd.read_csv(other_split / "split.csv")
    split.loc[split.index[split.split == "val"][0], "split"] = "train"
    split.to_csv(other_split / "split.csv", index=False)
    with pytest.raises(ValueError, match="another split"):
        check_members([members[0], other_split])
    with pytest.raises(ValueError, match="at least two"):
        check_members([members[0]])
    with pytest.raises(ValueError, match="shapes"):
        average_weights([[np.zeros(3)], [np.zeros(4)]])
    with pytest.raises(FileExistsError):
        make_soup(members, members[1])


def test_one_runs_epochs_average_as_a_soup_that_costs_that_run_once(members, tmp_path):
    """``soup runs/a runs/a/finetune.weights.h5``: a run's best and last epochs (weight averaging within a run)."""
    import keras

    from training.__main__ import main as training_cli
    from training.network import build_network
    from training.soup import check_members, member

    run = Path(shutil.copytree(members[0], tmp_path / "a"))
    keras.utils.set_random_seed(7)
    build_network(SIZE, weights=None).save_weights(run / "finetune.weights.h5")
    last = build_network(SIZE, weights=None)
    last.load_weights(run / "finetune.weights.h5")
    assert member(run / "finetune.weights.h5").name == "a:finetune"
    assert member(run / "best.weights.h5") == member(run)
    with pytest.raises(ValueError, match="given twice"):
        check_members([member(run), member(run / "best.weights.h5")])

    out = tmp_path / "swa"
    training_cli(["soup", str(run), str(run / "finetune.weights.h5"), "--out", str(out)])
    for x, y, m in zip(weights_of(run), last.get_weights(), weights_of(out), strict=True):
        np.testing.assert_allclose(m, (x + y) / 2, rtol=1e-6, atol=1e-7)
    card = json.loads((out / "export/model_card.json").read_text())
    assert card["training"]["soup"]["members"] == ["a", "a:finetune"]
    assert card["training"]["train_seconds"] == pytest.approx(60.0)  # one run's cost, not twice it
    markdown = (out / "export/MODEL_CARD.md").read_text()
    assert "one run's weights saved at different epochs" in markdown and "run:F for its F.weights.h5" in markdown
    assert markdown.count("`python -m training a`") == 1


def test_the_recipe_table_reads_one_runs_epoch_files_as_an_epoch_range():
    from training.card import changed, soup_members

    epochs = "+".join(f"v33:finetune.e{e:02d}" for e in range(7, 13))
    assert soup_members(epochs) == "v33 epochs 7-12"
    assert soup_members("v33:finetune.e07+v33:finetune.e09") == "v33:finetune.e07+v33:finetune.e09"  # a gap
    assert soup_members("v24+v24:finetune") == "v24+v24:finetune"
    assert changed(1, {"differs": {"soup": epochs, "levels": 0.3}}) == "soup=v33 epochs 7-12, levels=0.3"
