"""The CSV contract of ``python -m model predict`` (and the Ray engine, and the app's batch tab).

One row per image: ``HEADER`` (the image, the 7 probabilities, the prediction), then ``EXTRA``
(P(malignant) and the three flags), then ``ERROR`` (why a file could not be read, else empty).
Users and the team's checks read these columns by name: extend at the end, never reorder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .flags import flag
from .labels import CLASSES
from .preprocessing import ImageError, load_image, resize, scale
from .risk import malignant_probability

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
HEADER = ["image", *CLASSES, "prediction"]
EXTRA = ["p_malignant", "suspicious", "uncertain", "not_dermoscopic"]  # after the contract's columns
ERROR = "error"  # last: why a file could not be read (empty when it was)


def result_rows(probs: np.ndarray, features: np.ndarray, clf, inputs: np.ndarray) -> list[list]:
    """Per image: the 7 probabilities, the prediction, then P(malignant) and the three flags.

    ``inputs``: the scaled network inputs behind ``probs`` (for the not-dermoscopic flag's detail score).
    """
    card = clf.card()
    threshold = card.operating_point.threshold
    rows = []
    for p, f in zip(probs, flag(probs, features, clf.head_kernel, card, inputs), strict=True):
        p_malignant = float(malignant_probability(p))
        rows.append([*(f"{v:.6f}" for v in p), CLASSES[int(p.argmax())], f"{p_malignant:.6f}",
                     int(p_malignant >= threshold), int(f.uncertain), int(f.not_dermoscopic)])
    return rows


def score_rows(clf, images: list[np.ndarray]) -> tuple[np.ndarray, list[list]]:
    """Probabilities (N, 7) and ``result_rows`` for uint8 images already at ``clf.input_size``, in one pass.

    The one place the batch doors (CLI, Ray, the app's batch tab) turn decoded images into rows.
    """
    inputs = scale(np.stack(images).astype(np.float32))
    probs, features = clf.run(inputs)
    return probs, result_rows(probs, features, clf, inputs)


def decode(path: Path, size: tuple[int, int]) -> np.ndarray | str:
    """The resized uint8 image, or the reason it could not be read."""
    try:
        return resize(load_image(path), size)
    except ImageError as exc:
        return str(exc).removeprefix(f"{path.name}: ")
    except OSError as exc:
        return exc.strerror or str(exc)


