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
- Faithfulness not fooled by the removal itself: ROAD (Rong et al., ICML 2022, "A consistent and
  efficient evaluation strategy for attribution methods"). A blurred-away region is a shape the
  model never saw in training, and the outline of the removed pixels can tell the model which
  pixels were removed (the class leaks through the mask). ROAD fills each removed pixel from its
  neighbours (noisy linear imputation) and reads the probability with the most relevant pixels
  removed first (MoRF: should fall) and the least relevant first (LeRF: should stay).
- Sanity (Adebayo et al., NeurIPS 2018): how alike two maps are (:func:`map_similarity`), for the
  maps of a trained and a randomised model (training/sanity.py does the randomising).

Each metric is a few lines of NumPy and SciPy over the runtime the app serves (LiteRT, no
TensorFlow). Quantus has them all but takes a TensorFlow or PyTorch model, randomises layer by
layer through that framework, and explains with its own methods: wrapping the served LiteRT maps
for it would be more code than these, and the serving stack would carry TensorFlow.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from model.preprocessing import resize, scale
from model.runtime import ClassifierLike

STEPS = 10  # deletion / insertion: a tenth of the pixels at a time
BLUR_SIGMA = 0.1  # of the image's longer side: the blurred copy keeps colour, loses structure
ROAD_PERCENTILES = (10, 30, 50, 70, 90)  # share of the pixels removed, each way
ROAD_NOISE = 0.01  # sd of the noise on imputed pixels, on the network's [-1, 1] scale (Rong et al.'s default)
# a removed pixel is the weighted mean of its 8 neighbours: edge neighbours count twice the diagonal ones
_NEIGHBOURS = ((-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
               (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12))


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


def impute_linear(image: np.ndarray, removed: np.ndarray, noise: float = ROAD_NOISE,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """``image`` (H, W, C) float with the ``removed`` (H, W) pixels filled from their neighbours.

    ROAD's noisy linear imputation: each removed pixel equals the weighted mean of its neighbours
    inside the image (removed ones included), one sparse linear system for all of them, plus a
    little noise, so the filled region carries no sharp outline and no trace of the map's shape.
    """
    height, width = removed.shape
    flat = np.asarray(image, np.float64).reshape(height * width, -1)
    index = np.flatnonzero(removed)
    out = flat.copy()
    if index.size == 0:
        return out.reshape(image.shape).astype(image.dtype)
    unknown = np.full(height * width, -1)
    unknown[index] = np.arange(index.size)
    ys, xs = np.divmod(index, width)
    rows, cols, values = [np.arange(index.size)], [np.arange(index.size)], []
    total = np.zeros(index.size)  # the weights of each removed pixel's neighbours inside the image
    known = np.zeros((index.size, flat.shape[1]))
    for dy, dx, weight in _NEIGHBOURS:
        y, x = ys + dy, xs + dx
        inside = np.flatnonzero((y >= 0) & (y < height) & (x >= 0) & (x < width))
        neighbour = y[inside] * width + x[inside]
        total[inside] += weight
        free = unknown[neighbour] >= 0
        rows.append(inside[free])
        cols.append(unknown[neighbour[free]])
        values.append(np.full(free.sum(), -weight))
        np.add.at(known, inside[~free], weight * flat[neighbour[~free]])
    system = coo_matrix((np.concatenate([total, *values]), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(index.size, index.size)).tocsc()
    filled = spsolve(system, known).reshape(index.size, -1)
    rng = rng or np.random.default_rng(0)
    out[index] = filled + noise * rng.standard_normal(filled.shape)
    return out.reshape(image.shape).astype(image.dtype)


def road(clf: ClassifierLike, image: np.ndarray, saliency: np.ndarray, label: int,
         percentiles: tuple[int, ...] = ROAD_PERCENTILES, seed: int = 0) -> dict[str, np.ndarray | float]:
    """ROAD: probability of ``label`` with a share of the pixels removed and imputed, most relevant first
    (MoRF) and least relevant first (LeRF), at each of ``percentiles``.

    ``road_morf`` and ``road_lerf`` are the means over the percentiles; ``road`` is half their
    difference (pytorch-grad-cam's ROADCombined): higher is more faithful. At the network's input
    size; all ``2 * len(percentiles)`` images in one runtime call.
    """
    small = scale(resize(image, clf.input_size).astype(np.float32))
    height, width = small.shape[:2]
    saliency = cv2.resize(np.asarray(saliency, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    rng = np.random.default_rng(seed)
    most, least = _ranking(saliency, rng), _ranking(-saliency, rng)
    copies = []
    for order in (most, least):
        for percentile in percentiles:
            removed = np.zeros(height * width, dtype=bool)
            removed[order[: int(round(percentile / 100 * order.size))]] = True
            copies.append(impute_linear(small, removed.reshape(height, width), rng=rng))
    probs = clf.run(np.stack(copies).astype(np.float32))[0][:, label]
    morf, lerf = probs[: len(percentiles)], probs[len(percentiles) :]
    return {"morf": morf, "lerf": lerf, "road_morf": float(morf.mean()), "road_lerf": float(lerf.mean()),
            "road": float((lerf.mean() - morf.mean()) / 2)}


def map_similarity(first: np.ndarray, second: np.ndarray, size: tuple[int, int] | None = None) -> dict[str, float]:
    """How alike two maps are: Spearman's rank correlation of their pixels, and SSIM of the two maps
    each scaled to [0, 1] (Adebayo et al.'s two measures), at ``size`` (default: the first map's).

    A constant (flat) map has no ranking: its rank correlation with anything is 0 (it keeps nothing
    of the other); ``flat`` says whether either map was, so that a study can count them.
    """
    height, width = size or first.shape[:2]
    a, b = (cv2.resize(np.asarray(m, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
            for m in (first, second))
    constant = a.max() == a.min() or b.max() == b.min()
    rank = 0.0 if constant else float(spearmanr(a.ravel(), b.ravel()).statistic)

    def unit(m: np.ndarray) -> np.ndarray:
        span = m.max() - m.min()
        return (m - m.min()) / span if span > 0 else np.zeros_like(m)

    return {"spearman": rank, "ssim": float(structural_similarity(unit(a), unit(b), data_range=1.0)),
            "flat": float(constant)}
