"""The teaching examples: chosen by the stated rule, true of the shipped model, HAM10000 only."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT

SHARED = ROOT.parent / "shared" / "data"


def _test_split(rows):
    return pd.DataFrame(rows, columns=["image_id", "lesion_id", "dx", "dx_type", "path"])


def test_rule_prefers_correct_confident_unflagged_and_relaxes_in_order():
    from training.studies.examples import choose

    rows, probs = [], []
    def add(dx, p_of, dx_type="histo"):
        rows.append((f"ISIC_{len(rows):07d}", f"HAM_{len(rows):07d}", dx, dx_type, "x.jpg"))
        probs.append(p_of)
    eye = np.eye(7)
    for k, dx in enumerate(("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")):
        add(dx, 0.9 * eye[k] + 0.1 / 7)             # correct, confident
        add(dx, 0.99 * eye[k] + 0.01 / 7, "consensus")  # more confident but not histopathology
    add("mel", 0.95 * eye[5] + 0.05 / 7)            # a melanoma called a naevus: the failure
    add("mel", 0.6 * eye[5] + 0.4 / 7)              # a less confident miss
    test, probs = _test_split(rows), np.array(probs)
    malignant = test.dx.isin(["mel", "bcc", "akiec"]).to_numpy()
    suspicious, no = malignant.copy(), np.zeros(len(test), bool)
    chosen = choose(test, probs, suspicious, no, no)
    assert [c["dx"] for c in chosen] == ["mel", "akiec", "bcc", "bkl", "df", "nv", "vasc", "mel"]
    assert all(c["role"] == "correct" and c["dx_type"] == "histo" for c in chosen[:7])
    assert chosen[-1]["role"] == "failure" and chosen[-1]["image_id"] == test.image_id[14]
    assert chosen[-1]["caption"].startswith("Failure: Melanoma (mel) called Melanocytic nevus (nv), 96%")

    # no df image passes: the rule gives up histopathology first and says so
    df_histo = (test.dx == "df") & (test.dx_type == "histo")
    relaxed = choose(test, probs, suspicious | df_histo.to_numpy(), no, no)  # the histo df is now flagged
    df = next(c for c in relaxed if c["dx"] == "df")
    assert df["dx_type"] == "consensus" and "not: histopathology" in df["caption"]


@pytest.fixture(scope="module")
def shipped_examples() -> list[dict]:
    with open(ROOT / "examples" / "examples.csv") as fh:
        return list(csv.DictReader(fh))


def test_shipped_examples_are_what_the_rule_says_of_the_shipped_model(shipped_examples, clf):
    from model import CLASSES, load_image
    from model.risk import assess

    per_class = [r for r in shipped_examples if r["role"] != "failure"]
    assert sorted(r["dx"] for r in per_class) == sorted(CLASSES)
    assert [r["role"] for r in shipped_examples].count("failure") == 1
    for row in shipped_examples:
        probs = clf.predict([load_image(ROOT / "examples" / row["file"])])[0]
        predicted = CLASSES[int(probs.argmax())]
        assert predicted == row["prediction"] and row["caption"]
        risk = assess(probs)
        if row["role"] == "correct":
            assert predicted == row["dx"]
            assert risk.suspicious == (row["dx"] in ("mel", "bcc", "akiec")), row["file"]  # flag agrees
        if row["role"] == "failure":
            assert predicted != row["dx"] and row["caption"].startswith("Failure:")
    assert shipped_examples[0]["dx"] == "mel" and shipped_examples[0]["role"] == "correct"


def test_shipped_examples_come_from_the_cards_test_split_and_only_from_ham10000(shipped_examples, clf):
    from training.data import card_split

    split = card_split(clf.card(), SHARED / "ham10000")
    test_lesions = set(split.lesion_id[split.split == "test"])
    for row in shipped_examples:
        assert row["lesion_id"] in test_lesions and row["image_id"] in set(split.image_id)
    external = set(pd.read_csv(SHARED / "isic2017" / "labels.csv").image_id)
    external |= set(pd.read_csv(SHARED / "isic2018_val" / "ISIC2018_Task3_Validation_GroundTruth.csv").image)
    assert not external & {r["image_id"] for r in shipped_examples}
    on_disk = {p.name for p in (ROOT / "examples").glob("*.jpg")}
    assert on_disk == {r["file"] for r in shipped_examples}  # nothing else, nothing missing


def test_the_app_labels_each_thumbnail_with_its_caption(shipped_examples):
    from app.examples import EXAMPLES, labels, true_diagnosis

    shown = labels()
    assert len(shown) == len(EXAMPLES) == len(shipped_examples)
    for text, row in zip(shown, shipped_examples, strict=True):
        assert len(text) <= 24  # fits under a thumbnail
        assert row["dx"] in text and (text.startswith("Failure:") == (row["role"] == "failure"))
    failure = next(r for r in EXAMPLES if r["role"] == "failure")
    assert "a failure" in true_diagnosis(failure["path"])
