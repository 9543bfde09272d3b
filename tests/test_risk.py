"""The malignancy summary and its validation-chosen operating point."""

from __future__ import annotations

import numpy as np

from model.labels import CLASSES
from model.risk import DISCLAIMER, assess, malignant_probability
from training.evaluate import at_threshold, operating_point


def test_malignant_probability_sums_mel_bcc_akiec():
    probs = np.array([0.1, 0.2, 0.05, 0.05, 0.3, 0.25, 0.05])
    assert malignant_probability(probs) == np.float64(0.1 + 0.2 + 0.3)


def test_operating_point_reaches_the_target_sensitivity():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(CLASSES), 500)
    probs = rng.dirichlet(np.ones(len(CLASSES)), 500)
    probs[np.isin(labels, [0, 1, 4]), 4] += 0.3  # malignant cases score higher
    probs /= probs.sum(1, keepdims=True)
    point = operating_point(labels, probs, sensitivity=0.9)
    assert point["sensitivity"] >= 0.9
    assert at_threshold(labels, probs, point["threshold"])["sensitivity"] == point["sensitivity"]
    # the highest such threshold: a hair higher loses sensitivity
    assert at_threshold(labels, probs, point["threshold"] + 1e-9)["sensitivity"] < 0.9


def test_summary_states_the_operating_point_and_disclaimer():
    card = {"malignant_operating_point": {"threshold": 0.2, "test_sensitivity": 0.91, "test_specificity": 0.6}}
    risk = assess(np.array([0.0, 0.0, 0.1, 0.0, 0.25, 0.65, 0.0]), card)
    assert risk.suspicious and risk.top_class == "nv"
    text = risk.summary()
    assert "Suspicious" in text and "20%" in text and "91%" in text and DISCLAIMER in text
    calm = assess(np.array([0.0, 0.0, 0.1, 0.0, 0.05, 0.85, 0.0]), card)
    assert not calm.suspicious and "Lower risk" in calm.summary()
