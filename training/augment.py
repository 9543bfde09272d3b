"""Training-time augmentation: TensorFlow ops for the tf.data pipeline of ``training.train``.

Every ``random_*`` op lives here; ``training.studies.robustness`` measures the same shifts on a
trained model, and ``training.mixing`` mixes pairs of images (CutMix, mixup).

Every op takes a float (H, W, 3) image in [0, 1]. ``lesion_crop`` is the lesion-focused crop:
a window that always holds the lesion's bounding box (``lesion_boxes.csv``), at a random zoom
and position, so the network sees the lesion at varying scale with varying amounts of skin and
corner around it, instead of learning where HAM10000's photographers put it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from model.preprocessing import load_image

BOXES_FILE = "lesion_boxes.csv"
MARGIN = 0.1  # the window holds the box grown by this share of its size
UNKNOWN_BOX = (0.25, 0.25, 0.75, 0.75)  # images without a box (ISIC 2017): the middle, where lesions are
DETAIL = 1.5  # lesion-cropped training images are decoded at this multiple of the input size
EDGE = 0.03  # width of a vignette's soft edge, as a fraction of the half-diagonal (studies.robustness's too)


def box_fractions(meta: pd.DataFrame, data_dir: str | Path) -> np.ndarray:
    """(N, 4) float32 boxes (top, left, bottom, right) as fractions of the image, one per row of ``meta``.

    Boxes are read from ``data_dir/lesion_boxes.csv`` in that folder's pixel coordinates; rows
    with no box (other sources) get ``UNKNOWN_BOX``.
    """
    data_dir = Path(data_dir)
    path = data_dir / BOXES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"lesion-focused crops need {path} (image_id,top,bottom,left,right)")
    boxes = pd.read_csv(path).drop_duplicates("image_id").set_index("image_id")
    missing = {"top", "bottom", "left", "right"} - set(boxes.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}")
    out = np.tile(np.asarray(UNKNOWN_BOX, np.float32), (len(meta), 1))
    sizes: dict[str, tuple[int, int]] = {}  # one folder's images share a size; read one per folder
    for i, (image_id, image_path) in enumerate(zip(meta.image_id, meta.path, strict=True)):
        if image_id not in boxes.index:
            continue
        folder = str(Path(image_path).parent)
        if folder not in sizes:
            sizes[folder] = load_image(image_path).shape[:2]
        height, width = sizes[folder]
        row = boxes.loc[image_id]
        out[i] = (row.top / height, row.left / width, row.bottom / height, row.right / width)
    return np.clip(out, 0.0, 1.0)


def lesion_window(box, min_zoom: float, seed=None):
    """A random crop window (top, left, height, width as fractions) that holds ``box`` with its margin.

    The window keeps the image's aspect: both sides are the same share ``zoom`` of the image's,
    drawn uniformly in [min_zoom, 1] and raised to what the box needs.
    """
    box = tf.cast(box, tf.float32)
    top, left, bottom, right = box[0], box[1], box[2], box[3]
    grow_h, grow_w = (bottom - top) * MARGIN / 2, (right - left) * MARGIN / 2
    top, bottom = tf.maximum(top - grow_h, 0.0), tf.minimum(bottom + grow_h, 1.0)
    left, right = tf.maximum(left - grow_w, 0.0), tf.minimum(right + grow_w, 1.0)
    zoom = tf.random.uniform([], min_zoom, 1.0, seed=seed)
    zoom = tf.clip_by_value(tf.maximum(zoom, tf.maximum(bottom - top, right - left)), 0.0, 1.0)
    y0 = tf.random.uniform([], tf.maximum(0.0, bottom - zoom), tf.minimum(top, 1.0 - zoom) + 1e-6, seed=seed)
    x0 = tf.random.uniform([], tf.maximum(0.0, right - zoom), tf.minimum(left, 1.0 - zoom) + 1e-6, seed=seed)
    return tf.stack([y0, x0, zoom, zoom])


def lesion_crop(image, box, min_zoom: float, size: tuple[int, int], seed=None):
    """``image`` cropped to a ``lesion_window`` and resized (antialiased) to ``size``."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    window = lesion_window(box, min_zoom, seed)
    y0 = tf.cast(tf.round(window[0] * shape[0]), tf.int32)
    x0 = tf.cast(tf.round(window[1] * shape[1]), tf.int32)
    h = tf.maximum(tf.cast(tf.round(window[2] * shape[0]), tf.int32), 1)
    w = tf.maximum(tf.cast(tf.round(window[3] * shape[1]), tf.int32), 1)
    y0 = tf.minimum(y0, tf.cast(shape[0], tf.int32) - h)
    x0 = tf.minimum(x0, tf.cast(shape[1], tf.int32) - w)
    crop = tf.image.crop_to_bounding_box(image, y0, x0, h, w)
    return tf.image.resize(crop, size, antialias=True)


def random_zoom_crop(image, size: tuple[int, int], low: float = 0.8):
    """The default crop: a random window of ``low``-1 of each side, anywhere, resized to ``size``."""
    zoom = tf.random.uniform([], low, 1.0)
    height, width = size
    crop = [tf.cast(height * zoom, tf.int32), tf.cast(width * zoom, tf.int32), 3]
    return tf.image.resize(tf.image.random_crop(image, crop), size)


def colour_jitter(image):
    """Small brightness, contrast, saturation and hue changes (a camera's variation, not a cast)."""
    x = tf.image.random_brightness(image, 0.08)
    x = tf.image.random_contrast(x, 0.85, 1.15)
    x = tf.image.random_saturation(x, 0.85, 1.15)
    return tf.image.random_hue(x, 0.02)


LOWEST_DETAIL = 84  # pixels on the long side: BCN20000's copy, the least detailed source there is


def random_degrade(image, probability: float, lowest: int = LOWEST_DETAIL, seed: int | None = None):
    """With ``probability``, the image resized down to a random long side from ``lowest`` pixels to its own
    and back up (area down, bilinear up), as a low-resolution copy looks at the network's input.

    Applied to every source alike, so that a source whose images all lack detail (BCN20000 at 84x84)
    cannot teach the network that blur predicts its class mix.
    """
    shape = tf.shape(image)[:2]
    long_side = tf.cast(tf.reduce_max(shape), tf.float32)
    factor = tf.random.uniform([], tf.minimum(lowest / long_side, 1.0), 1.0, seed=seed)
    small = tf.maximum(tf.cast(tf.round(tf.cast(shape, tf.float32) * factor), tf.int32), 1)
    blurred = tf.image.resize(tf.image.resize(image, small, method="area"), shape, method="bilinear")
    apply = tf.random.uniform([], seed=seed) < probability
    return tf.where(apply, tf.clip_by_value(blurred, 0.0, 1.0), image)


def random_vignette(image, probability: float, seed: int | None = None):
    """TensorFlow op for the training pipeline: a float (H, W, 3) image in [0, 1], vignetted with
    ``probability``: radius 0.55-1.0 half-diagonals, centre moved up to 5% of the image's size."""
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    radius = tf.random.uniform([], 0.55, 1.0, seed=seed)
    cy, cx = tf.unstack(tf.random.uniform([2], -0.05, 0.05, seed=seed))
    yy, xx = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
    half = tf.sqrt(height**2 + width**2) / 2
    dist = tf.sqrt((yy - (height - 1) / 2 - cy * height) ** 2 + (xx - (width - 1) / 2 - cx * width) ** 2) / half
    weights = tf.clip_by_value((radius - dist) / EDGE, 0.0, 1.0)[:, :, None]
    apply = tf.random.uniform([], seed=seed) < probability
    return tf.where(apply, image * weights, image)


def random_cast(image, strength: float, seed: int | None = None):
    """TensorFlow op: a float (H, W, 3) image in [0, 1] times an exposure gain and a gain per
    channel, each drawn from [1 - strength, 1 + strength], clipped to [0, 1]."""
    exposure = tf.random.uniform([], 1 - strength, 1 + strength, seed=seed)
    channels = tf.random.uniform([3], 1 - strength, 1 + strength, seed=seed)
    return tf.clip_by_value(image * exposure * channels, 0.0, 1.0)


def random_levels(image, probability: float, seed: int | None = None):
    """TensorFlow op: with ``probability``, each channel of a float (H, W, 3) image in [0, 1] stretched so
    that its own random low (0-3rd) and high (97th-100th) percentiles span [0, 1], as an editor's auto
    levels does (``studies.robustness.auto_levels``), each channel drawn apart so the balance moves too."""
    by_channel = tf.sort(tf.transpose(tf.reshape(image, [-1, 3])), axis=1)  # (3, pixels)
    last = tf.cast(tf.shape(by_channel)[1] - 1, tf.float32)
    low = tf.cast(tf.random.uniform([3], 0.0, 0.03, seed=seed) * last, tf.int32)
    high = tf.cast(tf.random.uniform([3], 0.97, 1.0, seed=seed) * last, tf.int32)
    lo = tf.gather(by_channel, low[:, None], batch_dims=1)[:, 0]
    hi = tf.gather(by_channel, high[:, None], batch_dims=1)[:, 0]
    stretched = tf.clip_by_value((image - lo) / tf.maximum(hi - lo, 1 / 255), 0.0, 1.0)
    apply = tf.random.uniform([], seed=seed) < probability
    return tf.where(apply, stretched, image)
