"""CutMix and MixUp (training/mixing.py): targets and weights follow what the mixed image shows."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("kind", ["cutmix", "mixup"])
def test_mixing_gives_targets_and_weights_in_the_proportion_the_image_shows(kind):
    import tensorflow as tf

    from training.mixing import mixer

    values = np.linspace(-0.9, 0.9, 7).astype(np.float32)  # class c's image is all values[c]
    class_weight = np.array([3.0, 2.0, 1.5, 6.0, 1.2, 0.2, 5.0], np.float32)
    classes = np.tile(np.arange(7), 4)
    images = np.broadcast_to(values[classes][:, None, None, None], (28, 150, 200, 3)).copy()
    batch = (images, np.eye(7, dtype=np.float32)[classes], class_weight[classes])
    mixed = tf.data.Dataset.from_tensors(batch).map(mixer(kind, share=1.0, seed=1))
    x, y, w = (np.asarray(t) for t in next(iter(mixed)))
    assert np.allclose(y.sum(1), 1, atol=1e-5)
    assert (y.max(1) < 0.999).sum() >= 10  # most images are mixed (a few draw themselves or a weight near 1)
    # what each image shows, the target says (CutMix: up to a box edge's rounding to pixels, < 1% here)
    assert np.allclose(x.mean((1, 2, 3)), y @ values, atol=0.02)
    assert np.allclose(w, y @ class_weight, atol=1e-4)  # and its loss weight follows
    if kind == "cutmix":  # a box of another image: every pixel is one image's or the other's
        assert all(len(np.unique(img.round(4))) <= 2 for img in x)


def test_mixing_leaves_the_rest_of_the_batch_alone_and_refuses_unknown_kinds():
    import tensorflow as tf

    from training.mixing import mixer
    from training.train import Config, _datasets

    assert mixer("cutmix", share=0.0) is None and mixer("none", share=0.5) is None
    with pytest.raises(ValueError, match="mix must be one of"):
        mixer("cutout", share=0.5)
    images = np.random.default_rng(0).uniform(-1, 1, (64, 12, 16, 3)).astype(np.float32)
    targets = np.eye(7, dtype=np.float32)[np.arange(64) % 7]
    mixed = tf.data.Dataset.from_tensors((images, targets, np.ones(64, np.float32))).map(mixer("cutmix", 0.25))
    x, y, _ = (np.asarray(t) for t in next(iter(mixed)))
    untouched = np.array([np.array_equal(a, b) for a, b in zip(x, images, strict=True)])
    assert 0.55 < untouched.mean() < 0.95  # about 3 in 4 stay as they were
    assert np.allclose(y[untouched], targets[untouched], atol=0.02)  # a box under a pixel wide leaves none

    labels = {name: np.arange(16) % 7 for name in ("train", "val", "test")}
    arrays = {name: np.zeros((16, 20, 30, 3), np.uint8) for name in labels}
    for mix, soft in (("none", False), ("mixup", True)):
        cfg = Config(data="", out="", size=(20, 30), batch_size=16, mix=mix, mix_share=1.0)
        train, _ = _datasets(arrays, labels, cfg)
        _, y, _ = (np.asarray(t) for t in next(iter(train)))
        assert (y.max(1) < 0.999).any() == soft
