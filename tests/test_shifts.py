"""Vignettes and colour casts (training/shifts.py): as augmentations and as the robustness table's shifts."""

from __future__ import annotations

import numpy as np


def test_vignette_blacks_out_the_corners_and_keeps_the_centre():
    from training.studies.robustness import vignette

    images = np.full((2, 150, 200, 3), 200, np.uint8)
    black = [float((vignette(images, r)[0, ..., 0] == 0).mean()) for r in (1.0, 0.8, 0.6)]
    assert black[0] < 0.01 < black[1] < black[2] < 0.5  # a smaller circle blacks out more
    out = vignette(images, 0.6)
    assert (out[:, :3, :3] == 0).all() and (out[:, 70:80, 95:105] == 200).all()


def test_cast_scales_each_channel_and_clips():
    from training.studies.robustness import cast

    image = np.full((1, 4, 4, 3), 200, np.uint8)
    assert cast(image, (1.1, 1.0, 0.5))[0, 0, 0].tolist() == [220, 200, 100]
    assert cast(image, (1.5, 1.5, 1.5)).max() == 255


def test_cast_augmentation_changes_colours_within_its_range():
    import tensorflow as tf

    from training.augment import random_cast

    image = tf.fill((8, 8, 3), 0.5)
    out = np.stack([np.asarray(random_cast(image, 0.2))[0, 0] for _ in range(30)])
    assert np.all(out >= 0.5 * 0.8 * 0.8 - 1e-6) and np.all(out <= 0.5 * 1.2 * 1.2 + 1e-6)
    assert out.std(axis=0).min() > 0.01  # every channel moves
    assert np.abs(out[:, 0] - out[:, 2]).max() > 0.02  # and not all by the same gain: a colour cast


def test_vignette_robustness_tells_a_model_that_reads_the_corners_from_one_that_does_not():
    from training.studies.robustness import SHIFTS, robustness

    rng = np.random.default_rng(0)
    images = rng.integers(100, 255, (20, 60, 80, 3), dtype=np.uint8)
    labels = np.arange(20) % 2

    def centre_reader(x):  # answers from the centre only, so a vignette cannot change it
        return np.eye(7)[np.where(x[:, 30, 40, 0] > 0, labels, 0)]

    def corner_reader(x):  # a black corner means class 4
        return np.eye(7)[np.where(x[:, 0, 0, 0] == 0, 4, labels)]

    vignettes = {name: shift for name, shift in SHIFTS.items() if name.startswith("vignette")}
    steady, fooled = robustness(centre_reader, images, labels, vignettes), robustness(corner_reader, images, labels,
                                                                                      vignettes)
    assert all(r["top_class_unchanged"] == 1.0 and r["balanced_accuracy"] == 1.0 for r in steady)
    assert all(r["top_class_unchanged"] == 0.0 and r["balanced_accuracy"] == 0.0 for r in fooled)


def test_the_editing_shifts_do_what_an_editor_does():
    from training.studies.robustness import auto_levels, centre_crop, saturate

    rng = np.random.default_rng(0)
    dull = rng.integers(90, 140, (2, 30, 40, 3)).astype(np.uint8)
    dull[..., 2] //= 2  # a blue-poor, low-contrast picture
    stretched = auto_levels(dull)
    for channel in range(3):  # every channel now spans (nearly) the whole range: contrast up, balance evened
        assert np.percentile(stretched[..., channel], 1) <= 3 and np.percentile(stretched[..., channel], 99) >= 252
    grey = np.full((1, 4, 4, 3), 120, np.uint8)
    assert np.array_equal(saturate(grey, 1.5), grey)  # grey has no colour to raise
    reddish = np.zeros((1, 4, 4, 3), np.uint8) + np.array([150, 100, 100], np.uint8)
    more = saturate(reddish, 1.5)[0, 0, 0].astype(int)
    assert more[0] > 150 and more[1] < 100 and more[2] < 100
    ring = np.zeros((1, 50, 50, 3), np.uint8)
    ring[:, 5:45, 5:45] = 200  # a bright square with a 5-pixel black border
    cropped = centre_crop(ring, 0.8)  # the central 40 pixels: the border is cropped away
    assert cropped.shape == ring.shape and cropped.min() >= 190


def test_random_levels_stretch_each_channel_or_leave_the_image_alone():
    import tensorflow as tf

    from training.augment import random_levels

    rng = np.random.default_rng(0)
    dull = (0.3 + 0.2 * rng.random((30, 40, 3))).astype(np.float32)
    dull[..., 2] *= 0.5  # low contrast, little blue
    image = tf.constant(dull)
    assert np.array_equal(np.asarray(random_levels(image, 0.0)), dull)
    for _ in range(5):
        out = np.asarray(random_levels(image, 1.0))
        for channel in range(3):  # stretched between its percentiles drawn in 0-3 and 97-100: spans 0 to 1,
            c = out[..., channel]  # with at most 3% of the pixels clipped at either end
            assert c.min() == 0 and c.max() == 1
            assert (c == 0).mean() <= 0.031 and (c == 1).mean() <= 0.031
    assert np.asarray(random_levels(image, 1.0)).mean(axis=(0, 1)).std() < dull.mean(axis=(0, 1)).std()  # balanced
