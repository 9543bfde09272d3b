"""The 'may not be a dermoscopic image' flag: its thresholds, chosen on validation, and how
often it fires on test images and on images that are not dermoscopic.

Those images are made here, nothing downloaded: the photographs and micrographs that
scikit-image ships, plus solid colours, gradients, noise, checkerboards, stripes and text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageDraw

from model.card import NOT_DERMOSCOPIC_KEY, NOT_DERMOSCOPIC_KEYS
from model.flags import INPUT_SCORES, energy_score, not_dermoscopic, structure_score
from model.preprocessing import prepare_batch, scale

from ..export import measure_in_place

SKIMAGE_IMAGES = ("astronaut", "brick", "camera", "cat", "chelsea", "clock", "coffee", "coins", "colorwheel",
                  "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon",
                  "page", "retina", "rocket", "text", "cell")


def _rgb(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = (255 * (array.astype(float) - array.min()) / max(float(np.ptp(array)), 1e-9)).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, -1)
    return np.ascontiguousarray(array[..., :3])


def non_dermoscopic_images(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    images = []
    for name in SKIMAGE_IMAGES:
        try:
            images.append((f"skimage.{name}", _rgb(getattr(skimage.data, name)())))
        except Exception:  # noqa: BLE001 - an image this scikit-image build lacks
            continue
    h, w = 300, 400
    for i, colour in enumerate(rng.integers(0, 256, (8, 3))):
        images.append((f"solid{i}", np.full((h, w, 3), colour, np.uint8)))
    images += [("black", np.zeros((h, w, 3), np.uint8)), ("white", np.full((h, w, 3), 255, np.uint8))]
    yy, xx = np.mgrid[:h, :w]
    images.append(("gradient", np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 128)], -1).astype(np.uint8)))
    for i in range(4):
        images.append((f"noise{i}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    for size in (10, 40):
        board = ((yy // size + xx // size) % 2 * 255).astype(np.uint8)
        images.append((f"checkerboard{size}", np.stack([board] * 3, -1)))
    images.append(("stripes", np.stack([((xx // 12) % 2 * 200).astype(np.uint8)] * 3, -1)))
    for i, text in enumerate(("Quarterly report 2026", "def main():\n    return 0", "ERROR 404 page not found")):
        img = Image.new("RGB", (w, h), (255, 255, 255) if i % 2 == 0 else (30, 30, 30))
        draw = ImageDraw.Draw(img)
        for line in range(8):
            draw.text((10, 10 + 35 * line), text, fill=(0, 0, 0) if i % 2 == 0 else (220, 220, 220))
        images.append((f"text{i}", np.asarray(img)))
    return images


def calibrate(runtime, inputs: dict[str, np.ndarray], features: dict[str, np.ndarray]) -> dict:
    """The card's ``not_dermoscopic`` section for ``runtime`` (the exported model, so thresholds match what ships).

    ``inputs`` and ``features``: scaled network inputs and their ``out_relu`` features for the
    "val" and "test" splits. Energy and structure flag the lowest 2.5% of validation images
    each, detail and colour the lowest 0.5% (flat or grey images are rare in dermoscopy but
    common among the rest).
    """
    others = non_dermoscopic_images()
    inputs = {**inputs, "other": prepare_batch([img for _, img in others], runtime.input_size)}
    features = {**features, "other": runtime.run(inputs["other"])[1]}
    energy = {name: energy_score(f, runtime.head_kernel) for name, f in features.items()}
    thresholds = {
        "threshold": float(np.percentile(energy["val"], 2.5)),
        "structure_threshold": float(np.percentile(structure_score(features["val"]), 2.5)),
    } | {f"{name}_threshold": float(np.percentile(score(inputs["val"]), 0.5)) for name, score in INPUT_SCORES.items()}
    flagged = {name: not_dermoscopic(energy[name], features[name], thresholds, inputs[name]) for name in features}
    return thresholds | {
        "score": "logsumexp over classes of (spatially pooled out_relu features x head kernel), no bias; "
        "structure: spatial standard deviation of the out_relu features, mean over channels; "
        "detail: mean absolute difference of neighbouring grey levels of the network input; "
        "colour: 90th percentile over pixels of the network input's chroma (largest minus smallest channel)",
        "chosen_on": "validation split: 2.5th percentile of its images' energy and structure scores, "
        "0.5th percentile of their detail and colour scores",
        "val_dermoscopic_flagged": float(flagged["val"].mean()),
        "test_dermoscopic_flagged": float(flagged["test"].mean()),
        "non_dermoscopic_flagged": float(flagged["other"].mean()),
        "non_dermoscopic_images": len(others),
        "non_dermoscopic_missed": [n for (n, _), f in zip(others, flagged["other"], strict=True) if not f],
    }


def recalibrate(export_dir: str | Path, data: str | Path, seed: int = 0) -> dict:
    """Recalibrate an exported model's not-dermoscopic flag on its own lesion split, in place.

    For a model whose run folder is gone (the shipped one): the split is rebuilt from the data
    and the seed, and must give the card's image counts. Only the card's ``not_dermoscopic``
    section changes (an old card's ``ood`` one goes); the model files and every other figure stay.
    """
    def measure(opened):
        inputs = {name: scale(x.astype(np.float32)) for name, x in opened.arrays.items()}
        features = {name: opened.runtime.run(x).features for name, x in inputs.items()}
        return calibrate(opened.runtime, inputs, features)

    return measure_in_place(export_dir, data, seed, NOT_DERMOSCOPIC_KEY, measure, replaces=NOT_DERMOSCOPIC_KEYS)
