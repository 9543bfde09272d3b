"""Mixing pairs of training images (CutMix, MixUp): a regulariser for a small, imbalanced set.

Keras's own layers do the mixing. Each image's loss weight (its class weight) is carried as an
extra label column, so the layers mix it with the same proportion as the one-hot targets: a
CutMix of a melanoma patch into a naevus weighs as much melanoma as it shows.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from .config import MIX


def mixer(kind: str, share: float, seed: int = 0) -> Callable | None:
    """A batch map (images, targets, weights) -> the same with ``share`` of the images mixed.

    The rest of the batch stays as it was, so the network still sees whole lesions; None when
    there is nothing to mix.
    """
    if kind not in MIX:
        raise ValueError(f"mix must be one of {MIX}, not {kind!r}")
    if kind == "none" or share <= 0:
        return None

    layer = keras.layers.CutMix(factor=1.0, seed=seed) if kind == "cutmix" else keras.layers.MixUp(alpha=0.2, seed=seed)

    def mix(images, targets, weights):
        labels = tf.concat([targets, tf.cast(weights, targets.dtype)[:, None]], axis=1)
        mixed = layer({"images": images, "labels": labels}, training=True)
        keep = tf.random.uniform(tf.shape(images)[:1]) >= share
        images = tf.where(keep[:, None, None, None], images, tf.cast(mixed["images"], images.dtype))
        labels = tf.where(keep[:, None], labels, tf.cast(mixed["labels"], labels.dtype))
        return images, labels[:, :-1], labels[:, -1]

    return mix
