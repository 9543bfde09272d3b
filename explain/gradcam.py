"""Grad-CAM in closed form for a pooling -> dense head.

For logit y_c = b_c + sum_k W_kc * mean_ij A_ijk, the gradient dy_c/dA_ijk = W_kc / (h*w)
is the same at every position, so Grad-CAM's channel weights (the spatial mean of the
gradient) are W_kc / (h*w) exactly, and the map is ReLU(A . W_c) up to a positive scale
that the normalisation removes. No backward pass: the runtime's one call suffices.
"""

from __future__ import annotations

import cv2
import numpy as np

from model.labels import class_index
from model.preprocessing import check_image


def cam_from_features(features: np.ndarray, kernel: np.ndarray, index: int) -> np.ndarray:
    """(h, w, C) ``out_relu`` features and the (C, 7) head kernel -> (h, w) map in [0, 1]."""
    cam = np.maximum(features @ kernel[:, index], 0.0)
    peak = cam.max()
    return (cam / peak if peak > 0 else cam).astype(np.float32)


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a map to (height, width), staying within [0, 1]."""
    height, width = size
    return np.clip(cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


def grad_cam(clf, image: np.ndarray, label: str | int | None = None) -> np.ndarray:
    """Grad-CAM of ``label`` (None: the top class) as float32 HxW in [0, 1] at the image's size."""
    check_image(image)
    probs, features = clf.predict_with_features([image])
    index = class_index(label, probs[0])
    return upsample(cam_from_features(features[0], clf.head_kernel, index), image.shape[:2])
