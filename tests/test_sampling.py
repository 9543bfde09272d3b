"""Class-balanced sampling across sources: what each draw's odds are and what an endless set delivers."""

from __future__ import annotations

import numpy as np
import pytest

from training.sampling import balanced_dataset, cell_weights, drawn_labels


def _pool() -> tuple[np.ndarray, np.ndarray]:
    """Three classes from two sources in lopsided numbers; class 2 only in source "b"."""
    labels = np.array([0] * 40 + [1] * 5 + [0] * 3 + [1] * 30 + [2] * 2)
    sources = np.array(["a"] * 45 + ["b"] * 35)
    return labels, sources


def test_cell_weights_make_classes_uniform_and_sources_uniform_within_each_class():
    labels, sources = _pool()
    weights = cell_weights(labels, sources)
    assert sum(weights.values()) == pytest.approx(1)
    assert weights[(0, "a")] == weights[(0, "b")] == weights[(1, "a")] == weights[(1, "b")] == pytest.approx(1 / 6)
    assert weights[(2, "b")] == pytest.approx(1 / 3)  # the only source of its class gets the whole class
    assert list(drawn_labels(labels)) == [0, 1, 2]


def test_balanced_dataset_draws_by_the_weights_and_keeps_each_images_columns_together():
    labels, sources = _pool()
    rows = np.arange(len(labels))
    draws = 6000
    dataset = balanced_dataset((rows, labels * 10), labels, sources, seed=0).take(draws)
    drawn, tens = map(np.array, zip(*[(int(r), int(t)) for r, t in dataset.as_numpy_iterator()], strict=True))
    assert (tens == labels[drawn] * 10).all()  # a row's columns travel together
    for (label, source), weight in cell_weights(labels, sources).items():
        share = np.mean((labels[drawn] == label) & (sources[drawn] == source))
        assert share == pytest.approx(weight, abs=0.025), (label, source)
    # the smallest cells come round in turn: both images of class 2 and all 3 of (0, "b") are drawn
    assert set(drawn[labels[drawn] == 2]) == {78, 79}
    assert set(drawn[(labels[drawn] == 0) & (drawn >= 45)]) == {45, 46, 47}
    again = [int(r) for r, _ in balanced_dataset((rows, labels * 10), labels, sources, seed=0).take(50)]
    assert again == list(drawn[:50])  # seeded


def test_balanced_sampling_needs_the_sources():
    from training.config import Config
    from training.train import _datasets

    arrays = {name: np.zeros((4, 8, 8, 3), np.uint8) for name in ("train", "val", "test")}
    labels = {name: np.array([0, 1, 0, 1]) for name in arrays}
    with pytest.raises(ValueError, match="source"):
        _datasets(arrays, labels, Config(size=(8, 8), sampling="balanced"))
