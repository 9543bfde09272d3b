"""How far an explanation can be trusted, measured: does it point at the lesion, does it show what the model uses?

Two questions, two kinds of metric, each read against a baseline a map would reach for nothing:

- Localisation (needs the lesion's bounding box): the pointing game (Zhang et al., ECCV 2016:
  is the map's peak inside the box?) and the energy-based pointing game (Wang et al., Score-CAM,
  CVPR-W 2020: the share of the map's positive mass inside the box). Lesions sit near the centre
  of dermoscopic images, so a map that ignores the image and peaks at the centre
  (:func:`centre_prior`) is the baseline to beat, not only the box's share of the area.
- Faithfulness (needs only the model): deletion and insertion (Petsiuk et al., RISE, BMVC 2018).
  The pixels the map ranks first are replaced by a blurred copy (deletion) or restored into it
  (insertion), a tenth at a time; the explained class's probability should fall fast (low
  deletion area) and come back fast (high insertion area). A random ranking is the baseline.

Each metric is a few lines of NumPy over the runtime the app serves; a general library (Quantus)
would need the model wrapped for TensorFlow or PyTorch and brings far more than these four.
"""

from __future__ import annotations

import cv2
import numpy as np

from model.preprocessing import resize, scale
from model.runtime import ClassifierLike

STEPS = 10  # deletion / insertion: a tenth of the pixels at a time
BLUR_SIGMA = 0.1  # of the image's longer side: the blurred copy keeps colour, loses structure


def box_mask(shape: tuple[int, int], box: tuple[float, float, float, float], box_shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of a (top, bottom, left, right) box given in pixels of an image of ``box_shape``."""
    height, width = shape
    sy, sx = height / box_shape[0], width / box_shape[1]
    top, bottom, left, right = box
    mask = np.zeros(shape, dtype=bool)
    mask[int(round(top * sy)) : int(round(bottom * sy)), int(round(left * sx)) : int(round(right * sx))] = True
    return mask


def pointing_hit(saliency: np.ndarray, mask: np.ndarray) -> bool:
    """Is the map's highest point inside the mask? (The first of tied maxima counts.)"""
    return bool(mask.flat[int(np.argmax(saliency))])


def energy_share(saliency: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's positive mass inside the mask; NaN for a map with no positive part."""
    positive = np.maximum(saliency, 0.0)
    total = float(positive.sum())
    return float(positive[mask].sum() / total) if total > 0 else float("nan")


def centre_prior(shape: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """A Gaussian bump at the image centre (sigma as a fraction of each side): the image-blind baseline."""
    height, width = shape
    yy = (np.arange(height) - (height - 1) / 2) / (sigma * height)
    xx = (np.arange(width) - (width - 1) / 2) / (sigma * width)
    return np.exp(-0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2)).astype(np.float32)


def _ranking(saliency: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pixel indices, most salient first; ties (a LIME superpixel, a flat map) in random order."""
    jitter = rng.random(saliency.size)
    return np.lexsort((jitter, -saliency.ravel()))


def deletion_insertion(
    clf: ClassifierLike, image: np.ndarray, saliency: np.ndarray, label: int, steps: int = STEPS, seed: int = 0
) -> dict[str, np.ndarray | float]:
    """Probability of ``label`` as the map's top pixels are blurred away (deletion) or put back (insertion).

    Works at the network's input size (the image and the map are resized to it) and scores all
    ``2 * (steps + 1)`` images in one runtime call. Areas are the mean over the steps
    (trapezoid rule on [0, 1]).
    """
    small = resize(image, clf.input_size)
    height, width = small.shape[:2]
    sigma = BLUR_SIGMA * max(height, width)
    blurred = cv2.GaussianBlur(small, (0, 0), sigma)
    saliency = cv2.resize(np.asarray(saliency, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    order = _ranking(saliency, np.random.default_rng(seed))
    counts = np.linspace(0, order.size, steps + 1).round().astype(int)
    first = np.zeros((steps + 1, order.size), dtype=bool)  # row k: the top counts[k] pixels
    for k, n in enumerate(counts):
        first[k, order[:n]] = True
    first = first.reshape(steps + 1, height, width, 1)
    deleted = np.where(first, blurred, small)
    inserted = np.where(first, small, blurred)
    probs = clf.run(scale(np.concatenate([deleted, inserted]).astype(np.float32)))[0][:, label]
    deletion, insertion = probs[: steps + 1], probs[steps + 1 :]
    return {
        "deletion": deletion,
        "insertion": insertion,
        "deletion_auc": float(np.trapezoid(deletion, dx=1 / steps)),
        "insertion_auc": float(np.trapezoid(insertion, dx=1 / steps)),
    }
