"""The dermatoscope's vignette: black outside a circular field of view.

In HAM10000 few images have one (3.5%), and more often melanomas (8.9%) and benign keratoses
(6.8%) than naevi (2.2%): a model can learn the black corners as a sign of the class. Other
clinics' dermatoscopes vignette most images. Training adds random vignettes to every class
(``--vignette P``), and the card measures how much a vignette changes the answers.

Radii are fractions of the image's half-diagonal: 1.0 touches the corners, 0.6 blacks out
about 40% of a 4:3 image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ROBUSTNESS_RADII = (0.8, 0.7, 0.6)
EDGE = 0.03  # width of the soft edge, as a fraction of the half-diagonal


def _field(height: int, width: int, radius: float, cy: float = 0.0, cx: float = 0.0) -> np.ndarray:
    """(H, W) weights: 1 inside the circle, 0 outside, a soft edge between."""
    half = np.hypot(height, width) / 2
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    dist = np.hypot(yy - (height - 1) / 2 - cy * height, xx - (width - 1) / 2 - cx * width) / half
    return np.clip((radius - dist) / EDGE, 0.0, 1.0).astype(np.float32)


def vignette(images: np.ndarray, radius: float) -> np.ndarray:
    """uint8 (N, H, W, 3) images, black outside a centred circle of ``radius`` (half-diagonals)."""
    images = np.asarray(images)
    weights = _field(images.shape[1], images.shape[2], radius)[None, :, :, None]
    return (images.astype(np.float32) * weights).round().astype(np.uint8)


def random_vignette(image, probability: float, seed: int | None = None):
    """TensorFlow op for the training pipeline: a float (H, W, 3) image in [0, 1], vignetted with
    ``probability``: radius 0.55-1.0 half-diagonals, centre moved up to 5% of the image's size."""
    import tensorflow as tf

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


def robustness(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, labels: np.ndarray,
               radii: tuple[float, ...] = ROBUSTNESS_RADII) -> list[dict]:
    """Balanced accuracy and agreement with the plain answers, for images vignetted at each radius.

    ``predict`` takes uint8 (N, H, W, 3) images and returns (N, classes) probabilities.
    """
    from model.metrics import classification_metrics

    plain = predict(images).argmax(axis=1)
    rows = []
    for radius in radii:
        probs = predict(vignette(images, radius))
        rows.append({
            "radius": radius,
            "blacked_out": float(1 - _field(images.shape[1], images.shape[2], radius).mean()),
            "balanced_accuracy": classification_metrics(labels, probs)["balanced_accuracy"],
            "top_class_unchanged": float((probs.argmax(axis=1) == plain).mean()),
        })
    return rows


def runtime_predict(runtime) -> Callable[[np.ndarray], np.ndarray]:
    """``predict`` for ``robustness`` on an exported LiteRT runtime (what ships)."""
    from model.preprocessing import scale

    return lambda images: runtime.run(scale(np.asarray(images).astype(np.float32)))[0]


def measure_exported(export_dir, data, seed: int = 0) -> dict:
    """Add the vignette robustness of an exported model to its card, in place.

    For a model whose run folder is gone (the shipped one): its split is rebuilt from the data and
    the seed. The model files and every other figure stay as they are.
    """
    import json
    from pathlib import Path

    from model.runtime import CARD_FILE, load_classifier

    from .card import render_markdown
    from .data import card_split, load_arrays

    export_dir = Path(export_dir)
    card = json.loads((export_dir / CARD_FILE).read_text())
    meta = card_split(card, data, seed)
    runtime = load_classifier(export_dir)
    predict = runtime_predict(runtime)
    card["vignette_robustness"] = {
        name: robustness(predict, load_arrays(list(meta[meta.split == name].path), runtime.input_size, desc=name),
                         meta[meta.split == name].label.to_numpy())
        for name in ("val", "test")
    }
    (export_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    (export_dir / "MODEL_CARD.md").write_text(render_markdown(card))
    return card["vignette_robustness"]
