"""Pictures a person reads: the heatmap over the image, LIME's superpixels outlined."""

from __future__ import annotations

import matplotlib
import numpy as np
from skimage.measure import label
from skimage.segmentation import mark_boundaries

SUPPORT_RGB = (0.0, 0.85, 0.2)  # green: regions that push towards the explained class
OPPOSE_RGB = (0.95, 0.1, 0.1)  # red: regions that push away from it


def gradcam_overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] map onto an RGB uint8 image; hot colours mark high values."""
    heat = matplotlib.colormaps[cmap](np.clip(cam, 0, 1))[..., :3]
    blended = (1 - alpha) * (image / 255.0) + alpha * heat
    return (np.clip(blended, 0, 1) * 255 + 0.5).astype(np.uint8)


def segments_of(weights: np.ndarray) -> np.ndarray:
    """Superpixel ids recovered from a LIME weight map: each superpixel is one connected region of one weight.

    So ``lime_weights``' map alone is enough to draw the overlay. Neighbours with exactly the
    same weight merge; only weight-0 superpixels share a weight in practice, and they are never drawn.
    """
    _, codes = np.unique(weights, return_inverse=True)
    return label(codes.reshape(weights.shape) + 1, connectivity=1, background=0)


def lime_overlay(
    image: np.ndarray,
    weights: np.ndarray,
    segments: np.ndarray | None = None,
    top_k: int = 5,
    show_opposing: bool = True,
    tint: float = 0.3,
) -> np.ndarray:
    """Outline and tint the ``top_k`` most supporting (green) and opposing (red) superpixels.

    ``segments``: the superpixel ids (``explain_lime(...).segments``); without them they are
    recovered from ``weights``.
    """
    segments = segments_of(weights) if segments is None else segments
    ids = np.unique(segments)
    per_segment = np.array([weights[segments == i].mean() for i in ids])
    order = np.argsort(per_segment)
    support = [ids[i] for i in order[::-1][:top_k] if per_segment[i] > 0]
    oppose = [ids[i] for i in order[:top_k] if per_segment[i] < 0] if show_opposing else []
    out = image / 255.0
    for chosen, colour in ((oppose, OPPOSE_RGB), (support, SUPPORT_RGB)):
        if not chosen:
            continue
        mask = np.isin(segments, chosen)
        out[mask] = (1 - tint) * out[mask] + tint * np.array(colour)
        out = mark_boundaries(out, np.where(mask, segments + 1, 0), color=colour, mode="thick")
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
