"""Class-balanced sampling across training sources, so that the source cannot predict the class.

BCN20000 brings many melanomas, basal cell carcinomas and actinic keratoses; HAM10000 is two thirds
naevi. Pooled as they are, "looks like Barcelona" would mean "malignant" to the network. Here each
draw picks a class uniformly, then a source uniformly among those that hold the class, then an image
of that cell: every class arrives equally often and, within a class, every source equally often.

An epoch is as many draws as HAM10000 has training images, so extra sources add variety without
lengthening a run. Classes arrive balanced, so the loss needs no class weights. A source that lacks
classes (ISIC 2017 holds three) still hints that an image is not of them; BCN20000 holds all seven.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def cell_weights(labels: np.ndarray, sources: np.ndarray) -> dict[tuple[int, str], float]:
    """{(class, source): probability of a draw from that cell}: classes uniform, sources uniform within each."""
    cells = sorted({(int(c), str(s)) for c, s in zip(labels, sources, strict=True)})
    classes = sorted({c for c, _ in cells})
    per_class = {c: sum(1 for k, _ in cells if k == c) for c in classes}
    return {(c, s): 1.0 / (len(classes) * per_class[c]) for c, s in cells}


def drawn_labels(labels: np.ndarray) -> np.ndarray:
    """One of each class present: the label distribution the sampler trains on (uniform), for class
    weights and logit adjustment (both then leave the loss as it is)."""
    return np.array(sorted({int(c) for c in labels}))


def balanced_dataset(elements: tuple[np.ndarray, ...], labels: np.ndarray, sources: np.ndarray,
                     seed: int) -> tf.data.Dataset:
    """An endless dataset of ``elements`` (arrays with one row per training image) drawn by ``cell_weights``.

    Each cell is shuffled and repeated on its own, so a rare cell's images come round in turn rather
    than by chance.
    """
    weights = cell_weights(labels, sources)
    cells, probabilities = [], []
    for i, ((label, source), weight) in enumerate(weights.items()):
        rows = np.flatnonzero((labels == label) & (sources == source))
        cells.append(tf.data.Dataset.from_tensor_slices(tuple(e[rows] for e in elements))
                     .shuffle(len(rows), seed=seed + i, reshuffle_each_iteration=True).repeat())
        probabilities.append(weight)
    return tf.data.Dataset.sample_from_datasets(cells, weights=probabilities, seed=seed)
