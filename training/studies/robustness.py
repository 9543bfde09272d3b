"""What another clinic's images differ in: the dermatoscope's vignette, the light's colour, and editing.

In HAM10000 few images have a vignette (black outside a circular field of view: 3.4%), and more
often melanomas (8.9%) and benign keratoses (6.8%) than naevi (2.2%): a model can learn black
corners as a sign of the class. Other clinics' dermatoscopes vignette most images, and their
light and cameras give other colour casts and exposures. Training can add them at random
(``--vignette P``, ``--cast C``, ``--levels P``: ``training.augment``'s ``random_*``), and every
card measures how each shift changes the answers.

Images handed on by a third party are often edited as well: levels stretched per channel (which
also white-balances), saturation raised, the lesion cropped closer. The team measured the shipped
recipe collapsing on colour-enhanced, cropped copies of the ISIC 2018 test set, so the table has
those edits too.

Vignette radii are fractions of the image's half-diagonal: 1.0 touches the corners, 0.6 blacks
out about 40% of a 4:3 image.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from model.metrics import classification_metrics

from ..augment import EDGE
from ..export import measure_in_place


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


def cast(images: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """uint8 (N, H, W, 3) images with each of R, G, B multiplied by its gain (light colour, exposure)."""
    return np.clip(np.asarray(images).astype(np.float32) * np.asarray(gains, np.float32), 0, 255).round().astype(
        np.uint8)


def auto_levels(images: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """uint8 (N, H, W, 3) images with each channel stretched so its ``low``-``high`` percentiles span 0-255.

    As a photo editor's "auto levels" does: each channel on its own, so the image is white-balanced
    and its contrast raised at once.
    """
    x = np.asarray(images).astype(np.float32)
    lo, hi = np.percentile(x, [low, high], axis=(1, 2), keepdims=True)
    return np.clip((x - lo) / np.maximum(hi - lo, 1.0) * 255, 0, 255).round().astype(np.uint8)


def saturate(images: np.ndarray, factor: float) -> np.ndarray:
    """uint8 (N, H, W, 3) images with their colour moved ``factor`` times as far from its grey (Rec. 601 luma)."""
    x = np.asarray(images).astype(np.float32)
    grey = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    return np.clip(grey + factor * (x - grey), 0, 255).round().astype(np.uint8)


def centre_crop(images: np.ndarray, share: float) -> np.ndarray:
    """uint8 (N, H, W, 3) images cropped to their central ``share`` of each side, resized back (a closer crop)."""
    images = np.asarray(images)
    h, w = images.shape[1:3]
    ch, cw = round(h * share), round(w * share)
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.stack([cv2.resize(im[top:top + ch, left:left + cw], (w, h), interpolation=cv2.INTER_AREA)
                     for im in images])


SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "vignette, radius 0.8 (13% black)": lambda x: vignette(x, 0.8),
    "vignette, radius 0.7 (27% black)": lambda x: vignette(x, 0.7),
    "vignette, radius 0.6 (44% black)": lambda x: vignette(x, 0.6),
    "warmer light (R x1.12, B x0.88)": lambda x: cast(x, (1.12, 1.0, 0.88)),
    "cooler light (R x0.88, B x1.12)": lambda x: cast(x, (0.88, 1.0, 1.12)),
    "20% darker": lambda x: cast(x, (0.8, 0.8, 0.8)),
    "20% brighter": lambda x: cast(x, (1.2, 1.2, 1.2)),
    "levels stretched per channel (1-99%)": auto_levels,
    "saturation x1.5": lambda x: saturate(x, 1.5),
    "centre crop to 80%, levels stretched": lambda x: auto_levels(centre_crop(x, 0.8)),
}


EDITS = ("levels stretched per channel (1-99%)", "saturation x1.5", "centre crop to 80%, levels stretched")


def edited(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    """(N, len(EDITS), classes) probabilities of uint8 (N, H, W, 3) images under each of EDITS."""
    return np.stack([predict(SHIFTS[name](images)) for name in EDITS], axis=1)


def robustness(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, labels: np.ndarray,
               shifts: dict[str, Callable[[np.ndarray], np.ndarray]] = SHIFTS,
               plain: np.ndarray | None = None) -> list[dict]:
    """Balanced accuracy and agreement with the unshifted answers, for the images under each shift.

    ``predict`` takes uint8 (N, H, W, 3) images and returns (N, classes) probabilities;
    ``plain``: those of the unshifted images, when the caller already has them.
    """
    plain = (predict(images) if plain is None else np.asarray(plain)).argmax(axis=1)
    rows = []
    for name, shift in shifts.items():
        probs = predict(shift(images))
        rows.append({
            "shift": name,
            "balanced_accuracy": classification_metrics(labels, probs)["balanced_accuracy"],
            "top_class_unchanged": float((probs.argmax(axis=1) == plain).mean()),
        })
    return rows


def runtime_predict(runtime) -> Callable[[np.ndarray], np.ndarray]:
    """``predict`` for ``robustness`` on an exported LiteRT runtime (what ships)."""
    return lambda images: runtime.run_uint8(np.asarray(images)).probs


def measure_exported(export_dir: str | Path, data: str | Path, seed: int = 0) -> dict:
    """Add the robustness table of an exported model to its card, in place.

    For a model whose run folder is gone (the shipped one): its split is rebuilt from the data and
    the seed. The model files and every other figure stay as they are.
    """
    return measure_in_place(export_dir, data, seed, "robustness", lambda opened: {
        name: robustness(runtime_predict(opened.runtime), images, opened.labels[name])
        for name, images in opened.arrays.items()})
