"""The app's teaching examples, chosen by a stated rule from the model's own test split.

Hand-picked examples went stale: every one was flagged suspicious and three of seven were
misclassified. The rule below is rerun for each shipped model
(``python -m training examples EXPORT --data DIR --out examples/``), so what the examples
teach stays true of the model that serves them.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np

from model.card import read_json
from model.flags import flag
from model.labels import CLASSES, MALIGNANT, NAMES
from model.preprocessing import scale
from model.risk import malignant_probability, operating_point
from model.runtime import load_classifier

from ..data import card_split, load_arrays

RULE = (
    "From the test split of the model's own training run (lesions it never saw), one image per "
    "diagnosis: histopathologically confirmed where possible, classified correctly, not flagged as "
    "uncertain or as possibly not dermoscopic, and with the risk flag agreeing with the truth "
    "(malignant flagged, benign not), the most confident such image; where no image of a class "
    "passes, the rule relaxes in that order and says so. Then one instructive failure: the malignant "
    "lesion the model most confidently calls benign (not flagged as possibly not dermoscopic)."
)
COLUMNS = ["file", "image_id", "lesion_id", "dx", "dx_type", "role", "prediction", "confidence", "caption"]


def choose(test, probs: np.ndarray, suspicious: np.ndarray, uncertain: np.ndarray,
           not_dermoscopic: np.ndarray) -> list[dict]:
    """Rows of ``test`` (a DataFrame with image_id, lesion_id, dx, dx_type) chosen by ``RULE``.

    Each result also gets ``role``, ``prediction``, ``confidence`` and ``caption``; the per-class
    picks come in ``CLASSES`` order with melanoma first (the app's first example), the failure last.
    """
    pred = probs.argmax(1)
    truth = np.array([CLASSES.index(d) for d in test.dx])
    malignant = np.isin(test.dx, sorted(MALIGNANT))
    histo = (test.dx_type == "histo").to_numpy()
    correct = pred == truth
    # the conditions in the order they are given up when no image of a class meets them all
    conditions = [("histopathology", histo), ("risk flag agrees", suspicious == malignant),
                  ("not uncertain", ~uncertain), ("dermoscopic", ~not_dermoscopic), ("correct", correct)]
    chosen = []
    for dx in ("mel", *(c for c in CLASSES if c != "mel")):
        k = CLASSES.index(dx)
        of_class = truth == k
        for dropped in range(len(conditions) + 1):
            ok = of_class.copy()
            for _, mask in conditions[dropped:]:
                ok &= mask
            if ok.any():
                break
        i = int(np.flatnonzero(ok)[np.argmax(probs[ok, k])])
        note = "" if dropped == 0 else "; no test image met the rule, so not: " + ", ".join(
            name for name, _ in conditions[:dropped])
        verdict = "flagged suspicious" if suspicious[i] else "not flagged"
        caption = (f"{NAMES[dx]} ({dx}): {'correct' if correct[i] else 'wrong'}, "
                   f"{probs[i, pred[i]]:.0%} {CLASSES[pred[i]]}, {verdict}{note}")
        chosen.append(_row(test, i, "correct" if correct[i] else "best available", pred, probs, caption))
    missed = malignant & ~np.isin(pred, [CLASSES.index(c) for c in MALIGNANT]) & ~not_dermoscopic
    if not missed.any():  # no malignant lesion called benign: the most confident error of any kind
        missed = ~correct
    if missed.any():
        i = int(np.flatnonzero(missed)[np.argmax(probs[missed].max(1))])
        dx = test.dx.iloc[i]
        caption = (f"Failure: {NAMES[dx]} ({dx}) called {NAMES[CLASSES[pred[i]]]} ({CLASSES[pred[i]]}), "
                   f"{probs[i, pred[i]]:.0%}, {'flagged suspicious' if suspicious[i] else 'not flagged'}")
        chosen.append(_row(test, i, "failure", pred, probs, caption))
    return chosen


def _row(test, i: int, role: str, pred: np.ndarray, probs: np.ndarray, caption: str) -> dict:
    item = test.iloc[i]
    return {"file": f"{item.image_id}.jpg", "image_id": item.image_id, "lesion_id": item.lesion_id,
            "dx": item.dx, "dx_type": item.dx_type, "role": role, "prediction": CLASSES[pred[i]],
            "confidence": f"{probs[i, pred[i]]:.3f}", "caption": caption, "path": item.path}


def score_test_split(export_dir: str | Path, data: str | Path, seed: int = 0):
    """The export's test split and, per image, its probabilities and the app's three flags (LiteRT, as served)."""

    card = read_json(export_dir)
    meta = card_split(card, data, seed)
    test = meta[meta.split == "test"].reset_index(drop=True)
    clf = load_classifier(export_dir)
    images = load_arrays(list(test.path), clf.input_size, desc="test")
    probs, flags = [], []
    for start in range(0, len(images), 64):
        inputs = scale(images[start : start + 64].astype(np.float32))
        p, features = clf.run(inputs)
        probs.append(p)
        flags += flag(p, features, clf.head_kernel, clf.card(), inputs)
    probs = np.concatenate(probs)
    suspicious = malignant_probability(probs) >= operating_point(clf.card())["threshold"]
    uncertain = np.array([f.uncertain for f in flags])
    not_dermoscopic = np.array([f.not_dermoscopic for f in flags])
    return card, test, probs, suspicious, uncertain, not_dermoscopic


def write_examples(export_dir: str | Path, data: str | Path, out: str | Path, seed: int = 0) -> list[dict]:
    """Choose the examples for an export and write them (images, examples.csv, README.md) to ``out``.

    Images listed in an earlier ``examples.csv`` there and not chosen again are removed; nothing
    else in ``out`` is touched. Only HAM10000 images can be chosen: the split is HAM10000's.
    """
    card, test, probs, suspicious, uncertain, not_dermoscopic = score_test_split(export_dir, data, seed)
    rows = choose(test, probs, suspicious, uncertain, not_dermoscopic)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index = out / "examples.csv"
    if index.is_file():
        with open(index) as fh:
            for old in csv.DictReader(fh):
                if old["file"] not in {r["file"] for r in rows}:
                    (out / old["file"]).unlink(missing_ok=True)
    for row in rows:
        shutil.copy(row["path"], out / row["file"])
    with open(index, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / "README.md").write_text(_readme(card, rows))
    return rows


def _readme(card: dict, rows: list[dict]) -> str:
    listing = "\n".join(f"- `{r['file']}` ({r['role']}): {r['caption']}" for r in rows)
    return f"""# Example images

{len(rows)} dermatoscopic images from HAM10000, chosen for model {card.get('version', '?')} by this rule
(`python -m training examples EXPORT --data DIR --out examples/` reapplies it):

{RULE}

{listing}

`examples.csv` lists each file with its lesion, true diagnosis, how it was confirmed (`dx_type`),
its role, the model's answer and the caption the app shows under its thumbnail.

Source: Tschandl, P., Rosendahl, C. & Kittler, H. *The HAM10000 dataset, a large collection of
multi-source dermatoscopic images of common pigmented skin lesions.* Scientific Data 5, 180161 (2018),
doi:10.1038/sdata.2018.161; dataset doi:10.7910/DVN/DBW86T. Licence: CC BY-NC 4.0 (attribution,
non-commercial). Images are the copies the model was trained from.
"""
