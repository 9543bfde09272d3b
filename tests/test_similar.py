"""Similar confirmed cases: a gallery from the training split only, served by explain.similar_cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def gallery_export(run_with_extra, shared_data):
    from training.__main__ import main as training_cli

    export = run_with_extra / "export"
    training_cli(["gallery", str(export), "--data", str(shared_data / "ham10000")])
    return export


def test_gallery_holds_the_training_split_only_and_the_card_records_its_file(gallery_export, run_with_extra):
    from explain.similar import load_gallery
    from model.runtime import sha256

    gallery = load_gallery(gallery_export / "gallery.npz")
    split = pd.read_csv(run_with_extra / "split.csv")
    train = split[(split.split == "train") & (split.source == "ham10000")]
    held_out = set(split[split.split != "train"].image_id)
    assert set(gallery.image_ids) == set(train.image_id)  # every HAM training image, and only those
    assert not set(gallery.image_ids) & held_out
    assert not set(gallery.image_ids) & set(split[split.source == "isic2017"].image_id)  # not shippable
    card = json.loads((gallery_export / "model_card.json").read_text())["similar_cases"]
    assert card["sha256"] == sha256(gallery_export / "gallery.npz")
    assert card["bytes"] == (gallery_export / "gallery.npz").stat().st_size
    assert card["embedding"] in ("cosine", "pca_whitened_64", "pca_whitened_128", "pca_whitened_256")
    chosen = card["measured"][card["embedding"]]["val"]["vote_balanced_accuracy"]
    servable = [k for k in card["measured"] if k != "euclidean"]
    assert chosen == max(card["measured"][k]["val"]["vote_balanced_accuracy"] for k in servable)
    assert "Similar confirmed cases" in (gallery_export / "MODEL_CARD.md").read_text()


def test_similar_cases_contract_and_determinism(gallery_export, shared_data):
    from explain import similar_cases
    from model import load_classifier, load_image

    clf = load_classifier(gallery_export)
    image = load_image(next((shared_data / "isic2018_val" / "images").glob("*.jpg")))
    cases = similar_cases(clf, image, k=6)
    assert len(cases) == 6
    for case in cases:
        assert set(case) == {"image_id", "dx", "dx_type", "similarity", "thumbnail"}
        assert 0 <= case["similarity"] <= 1
        assert case["thumbnail"].dtype == np.uint8 and case["thumbnail"].ndim == 3 and case["thumbnail"].shape[2] == 3
    similarities = [c["similarity"] for c in cases]
    assert similarities == sorted(similarities, reverse=True)
    again = similar_cases(clf, image, k=6)
    assert [c["image_id"] for c in again] == [c["image_id"] for c in cases]


def test_a_gallery_image_finds_itself_first(gallery_export, run_with_extra):
    from explain import similar_cases
    from model import load_classifier, load_image

    split = pd.read_csv(run_with_extra / "split.csv")
    row = split[(split.split == "train") & (split.source == "ham10000")].iloc[3]
    first = similar_cases(load_classifier(gallery_export), load_image(row.path), k=1)[0]
    assert first["image_id"] == row.image_id and first["dx"] == row.dx
    assert first["similarity"] > 0.999


def test_a_model_without_a_gallery_says_how_to_build_one(run_with_extra, tmp_path, clf):
    import shutil

    from explain import similar_cases
    from model import ImageError, load_classifier

    bare = tmp_path / "bare"
    shutil.copytree(run_with_extra / "export", bare, ignore=shutil.ignore_patterns("gallery.npz"))
    with pytest.raises(FileNotFoundError, match="python -m training gallery"):
        similar_cases(load_classifier(bare), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ImageError):
        similar_cases(clf, np.zeros((8, 8), np.uint8))
