"""``python -m benchmarks.input_size``: an export at another input size, which the benchmarks can time."""

from __future__ import annotations

import json

import numpy as np


def test_an_export_at_another_size_loads_and_classifies_at_that_size(tmp_path):
    from benchmarks.input_size import write_export
    from model import load_classifier

    out = write_export((64, 96), tmp_path / "e64")
    card = json.loads((out / "model_card.json").read_text())
    assert card["input_size"] == {"height": 64, "width": 96} and card["version"] == "timing-64x96"
    clf = load_classifier(out)  # the card's file hashes are the new files'
    assert tuple(clf.input_size) == (64, 96)
    probs = clf.predict([np.zeros((150, 200, 3), np.uint8)])
    assert probs.shape == (1, 7) and abs(probs.sum() - 1) < 1e-5
