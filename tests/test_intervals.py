"""Lesion-bootstrap intervals and paired differences (model/metrics.py, training/intervals.py)."""

from __future__ import annotations

import numpy as np
import pytest


def _lesion_predictions(lesions: int = 200, images_per_lesion: int = 4, seed: int = 0):
    """Labels and probabilities where each lesion's images share one answer, right or wrong."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, lesions)
    answers = np.where(rng.random(lesions) < 0.7, labels, (labels + 1) % 7)
    probs = np.full((lesions, 7), 0.02)
    probs[np.arange(lesions), answers] = 0.88
    repeat = np.repeat(np.arange(lesions), images_per_lesion)
    return labels[repeat], probs[repeat], repeat


def test_bootstrap_resamples_lesions_so_copies_do_not_narrow_the_interval():
    from model.metrics import bootstrap_intervals

    labels, probs, lesions = _lesion_predictions()
    by_lesion = bootstrap_intervals(labels, probs, lesions, resamples=400)
    by_image = bootstrap_intervals(labels, probs, None, resamples=400)  # as if the copies were independent
    one_each = bootstrap_intervals(labels[::4], probs[::4], None, resamples=400)
    for name in ("accuracy", "balanced_accuracy"):
        width = np.diff(by_lesion[name])[0]
        assert width == pytest.approx(np.diff(one_each[name])[0], rel=0.3)
        assert width > 1.5 * np.diff(by_image[name])[0]
        accuracy = (probs.argmax(1) == labels).mean()
        if name == "accuracy":
            assert by_lesion[name][0] < accuracy < by_lesion[name][1]


def test_paired_difference_sees_a_small_sure_gain_that_separate_intervals_hide():
    from model.metrics import bootstrap_intervals
    from training.studies.intervals import paired_differences

    labels, probs, lesions = _lesion_predictions()
    better = probs.copy()
    wrong = np.flatnonzero(probs.argmax(1) != labels)
    fixed = wrong[np.isin(lesions[wrong], np.unique(lesions[wrong])[:8])]  # 8 lesions answered right now
    better[fixed] = 0.02
    better[fixed, labels[fixed]] = 0.88
    paired = paired_differences(labels, probs, better, lesions, resamples=300)["accuracy"]
    assert paired["difference"] == pytest.approx(8 / 200)
    assert paired["ci95"][0] > 0  # never worse on any resample
    apart = [bootstrap_intervals(labels, p, lesions, resamples=400)["accuracy"] for p in (probs, better)]
    assert apart[1][0] < apart[0][1]  # the two runs' own intervals overlap
    same = paired_differences(labels, probs, probs, lesions, resamples=50)
    assert all(d["difference"] == 0 and d["ci95"] == [0, 0] for d in same.values())
