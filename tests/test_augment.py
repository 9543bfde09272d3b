"""training.augment: the lesion-focused crop keeps the whole lesion, at random zoom and place."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def test_every_lesion_window_holds_the_box_and_stays_in_the_image():
    import tensorflow as tf

    from training.augment import MARGIN, lesion_window

    tf.random.set_seed(0)
    boxes = [(0.4, 0.45, 0.6, 0.55), (0.0, 0.0, 0.3, 0.2), (0.1, 0.6, 0.95, 1.0), (0.0, 0.0, 1.0, 1.0)]
    zooms = []
    for box in boxes:
        top, left, bottom, right = box
        for _ in range(60):
            y0, x0, h, w = lesion_window(box, 0.5).numpy()
            assert h == pytest.approx(w) and 0.5 <= h <= 1.0  # the image's aspect, at least the smallest zoom
            assert y0 >= 0 and x0 >= 0 and y0 + h <= 1 + 1e-5 and x0 + w <= 1 + 1e-5
            assert y0 <= top + 1e-5 and y0 + h >= bottom - 1e-5 and x0 <= left + 1e-5 and x0 + w >= right - 1e-5
            zooms.append(h)
        if box == (0.0, 0.0, 1.0, 1.0):
            assert h == pytest.approx(1.0)  # a box as large as the image allows no crop
    small = np.array(zooms[:60])
    assert small.min() < 0.6 and small.max() > 0.9  # the zoom varies over its range
    # the margin: a box needing 0.85 of the height grows by MARGIN and forces a larger window
    assert lesion_window((0.1, 0.6, 0.95, 1.0), 0.5).numpy()[2] >= min(1.0, 0.85 * (1 + MARGIN)) - 1e-5


def test_lesion_crop_keeps_every_lesion_pixel():
    """A white box on black: the crop, scaled back to the source's pixels, holds all of the box's area."""
    from training.augment import lesion_crop

    image = np.zeros((120, 160, 3), np.float32)
    image[40:70, 50:90] = 1.0
    box = (40 / 120, 50 / 160, 70 / 120, 90 / 160)
    for _ in range(20):
        crop = lesion_crop(image, box, 0.5, (60, 80)).numpy()
        assert crop.shape == (60, 80, 3)
        white = crop[..., 0].mean()  # the box's share of the window
        side = np.sqrt(30 * 40 / (white * 120 * 160))  # so the window's side as a share of the image's
        assert 0.5 - 0.03 <= side <= 1.0 + 0.03


def test_box_fractions_read_pixels_and_give_other_sources_the_middle(ham_folder):
    from training.augment import UNKNOWN_BOX, box_fractions
    from training.data import read_split

    meta = read_split(ham_folder).head(5)
    boxes = pd.read_csv(ham_folder / "lesion_boxes.csv").set_index("image_id")
    extra = pd.DataFrame({"image_id": ["ISIC_9999999"], "path": [str(meta.path.iloc[0])]})
    got = box_fractions(pd.concat([meta, extra], ignore_index=True), ham_folder)
    first = boxes.loc[meta.image_id.iloc[0]]
    assert got[0] == pytest.approx([first.top / 150, first.left / 200, first.bottom / 150, first.right / 200])
    assert got[-1] == pytest.approx(UNKNOWN_BOX)
    with pytest.raises(FileNotFoundError, match="lesion_boxes.csv"):
        box_fractions(meta, ham_folder / "images")


def test_the_lesion_cropped_run_trained_from_the_larger_copy_and_says_so(run_with_extra):
    """The session's tiny run uses --lesion-crop: its card's recipe names it."""
    import json

    card = json.loads((run_with_extra / "export" / "model_card.json").read_text())
    assert card["training"]["config"]["lesion_crop"] == 0.5
    assert "crops around the lesion box" in (run_with_extra / "export" / "MODEL_CARD.md").read_text()


def test_lesion_crop_outside_its_range_is_refused(tmp_path):
    from training.train import Config, train

    with pytest.raises(ValueError, match="lesion-crop"):
        train(Config(data=str(tmp_path), out=str(tmp_path / "run"), lesion_crop=1.5))


def _detail(x: np.ndarray) -> float:
    """Mean absolute difference of horizontally neighbouring pixels: what downscaling removes."""
    return float(np.abs(np.diff(np.asarray(x), axis=-2)).mean())


def test_random_degrade_removes_detail_on_the_share_asked_for_and_keeps_shape_and_range():
    import tensorflow as tf

    from training.augment import random_degrade

    rng = np.random.default_rng(0)
    image = tf.constant(rng.random((150, 200, 3)), tf.float32)
    assert np.array_equal(random_degrade(image, 0.0), image)
    tf.random.set_seed(0)
    outs = [random_degrade(image, 1.0).numpy() for _ in range(20)]
    assert all(o.shape == (150, 200, 3) and o.min() >= 0 and o.max() <= 1 for o in outs)
    assert max(_detail(o) for o in outs) < 0.8 * _detail(image)  # every draw lost detail
    assert np.std([_detail(o) for o in outs]) > 0.005  # at random strengths, down to 84 px on the long side
    changed = np.mean([not np.array_equal(random_degrade(image, 0.3).numpy(), image) for _ in range(200)])
    assert 0.2 < changed < 0.4


def test_the_degrade_option_reaches_the_training_images_and_its_range_is_checked():
    from training.config import Config
    from training.train import _datasets

    rng = np.random.default_rng(1)
    arrays = {name: rng.integers(0, 255, (16, 150, 200, 3), np.uint8) for name in ("train", "val", "test")}
    labels = {name: np.arange(16) % 7 for name in arrays}
    detail = {}
    for share in (0.0, 1.0):
        cfg = Config(data="", out="", size=(150, 200), batch_size=16, vignette=0.0, degrade=share)
        train, _ = _datasets(arrays, labels, cfg)
        detail[share] = _detail(next(iter(train))[0])
    assert detail[1.0] < 0.8 * detail[0.0]
    with pytest.raises(ValueError, match="--degrade"):
        Config(data="", out="", degrade=1.5)
