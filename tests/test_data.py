"""The lesion-grouped split (training/data.py): no lesion in two splits, classes stratified."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from training.data import read_metadata, split_by_lesion


def test_split_is_by_lesion_and_covers_every_image(ham_folder):
    meta = read_metadata(ham_folder)
    split = split_by_lesion(meta, seed=0)
    assert split.split.notna().all() and len(split) == len(meta)
    per_lesion = split.groupby("lesion_id").split.nunique()
    assert (per_lesion == 1).all(), "a lesion has images in two splits"
    assert set(split.split) == {"train", "val", "test"}
    again = split_by_lesion(meta, seed=0)
    pd.testing.assert_series_equal(split.split, again.split)  # fixed seed, same split


def test_split_on_real_metadata_keeps_lesions_together_and_stratifies(tmp_path):
    """The real HAM10000 metadata (no images needed): no leaks, every class in every split."""
    from tests.conftest import ROOT

    csv = ROOT.parent / "shared/data/ham10000/HAM10000_metadata.csv"
    meta = pd.read_csv(csv)
    meta["path"] = ""
    split = split_by_lesion(meta, seed=0)
    assert (split.groupby("lesion_id").split.nunique() == 1).all()
    shares = split.groupby("split").lesion_id.nunique() / meta.lesion_id.nunique()
    assert shares["train"] == pytest.approx(0.70, abs=0.01) and shares["test"] == pytest.approx(0.15, abs=0.01)
    for name in ("train", "val", "test"):
        part = split[split.split == name].drop_duplicates("lesion_id")
        assert set(part.dx) == set(meta.dx)
        mel_share = (part.dx == "mel").mean()
        assert mel_share == pytest.approx((meta.drop_duplicates("lesion_id").dx == "mel").mean(), abs=0.01)


def test_bcn20000_joins_the_training_split_only_with_its_lesions_and_the_card_names_it(shared_data, raw_run):
    from conftest import BCN_PER_CLASS

    from model.labels import CLASSES
    from training.data import read_bcn_train

    bcn = read_bcn_train(shared_data / "bcn20000_84")
    assert len(bcn) == BCN_PER_CLASS * len(CLASSES) and set(bcn.split) == {"train"}
    assert set(bcn.source) == {"bcn20000"} and (bcn.label == bcn.dx.map(CLASSES.index)).all()
    out, card = raw_run  # trained with BCN20000 beside HAM10000, half of the training images degraded
    split = pd.read_csv(out / "split.csv")
    assert set(split[split.source == "bcn20000"].split) == {"train"}
    assert card["data"]["extra_train"]["sources"] == {"bcn20000": len(bcn)}
    markdown = (out / "export" / "MODEL_CARD.md").read_text()
    assert "BCN20000" in markdown and "Combalia" in markdown and "ISIC 2017's validation" not in markdown
    assert "random down-and-up resolution degradation on 50% of training images" in markdown
    assert "class-balanced sampling, sources equally often within each class" in markdown
    # an epoch draws as many images as HAM10000's training split holds, not the pooled sources' total
    history = json.loads((out / "state.json").read_text())["history"]
    ham_train = int(((split.source == "ham10000") & (split.split == "train")).sum())
    assert {h["train_images"] for h in history} == {ham_train} and ham_train < (split.split == "train").sum()
