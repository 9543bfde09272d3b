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


def test_without_a_card_the_verdict_is_the_shipped_operating_point():
    """One verdict per image whichever door it comes through: the documented `assess(probs)`
    must flag what the app (which passes the card) flags."""
    from model.runtime import shipped_card

    point = shipped_card()["malignant_operating_point"]
    assert point["threshold"] < 0.5  # otherwise this test could not tell the defaults apart
    between = (point["threshold"] + 0.5) / 2  # above the shipped threshold, below 0.5
    probs = np.array([0.0, 0.0, 0.0, 0.0, between, 1 - between, 0.0])
    documented, app = assess(probs), assess(probs, shipped_card())
    assert documented.suspicious and app.suspicious
    assert documented.threshold == app.threshold == point["threshold"]
    assert documented.sensitivity == point["test_sensitivity"]
    assert not assess(probs, {}).suspicious  # a card without an operating point: 0.5


def test_the_shipped_default_needs_no_tensorflow_or_litert():
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys, numpy as np; from model.risk import assess; "
            "r = assess(np.full(7, 1 / 7)); assert r.threshold < 0.5, r; "
            "bad = [m for m in ('tensorflow', 'keras', 'ai_edge_litert', 'gradio') if m in sys.modules]; "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_flagged_benign_top_class_is_explained_not_contradicted():
    """'a benign blood-vessel lesion' then 'higher risk of malignancy' read as a contradiction."""
    card = {"malignant_operating_point": {"threshold": 0.17}}
    vasc = assess(np.array([0.05, 0.1, 0.0, 0.0, 0.16, 0.09, 0.6]), card)
    assert vasc.suspicious and vasc.top_class == "vasc"
    text = vasc.summary()
    assert "Vascular lesion (vasc), 60%: a benign blood-vessel lesion" in text
    assert "higher risk of malignancy" not in text
    assert "That class is benign, but the malignant classes together are too likely to rule out" in text
    assert "together get 31%, at or above the 17%" in text
    melanoma = assess(np.array([0.05, 0.1, 0.0, 0.0, 0.6, 0.25, 0.0]), card).summary()
    assert "That class is benign" not in melanoma and "Suspicious" in melanoma
    calm = assess(np.array([0.0, 0.0, 0.1, 0.0, 0.05, 0.85, 0.0]), card).summary()
    assert "below the 17%" in calm and "That class is benign" not in calm


def test_rounding_never_carries_a_probability_across_the_line_the_text_draws():
    """Issue 31: "no class reaches 50%" beside "bkl 50%" (0.4989); a P(malignant) of 0.1694 "below the 17%"."""
    from model.risk import percent

    assert percent(0.4989) == "50%" and percent(0.4989, 0.5) == "49.9%" and percent(0.5, 0.5) == "50%"
    assert percent(0.1694, 0.17) == "16.9%" and percent(0.16999, 0.17) == "16.999%" and percent(0.64, 0.17) == "64%"
    card = {"malignant_operating_point": {"threshold": 0.17}, "uncertainty": {"threshold": 0.5}}
    text = assess(np.array([0.0, 0.0, 0.4989, 0.0, 0.1694, 0.3317, 0.0]), card).summary()
    assert "together get 16.9%, below the 17%" in text
    assert "Benign keratosis-like lesion (bkl), 49.9%" in text
