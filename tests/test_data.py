"""The lesion-grouped split (training/data.py): no lesion in two splits, classes stratified."""

from __future__ import annotations

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
