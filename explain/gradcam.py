"""Grad-CAM in closed form for a pooling -> dense head, and a finer variant on the same runtime.

For logit y_c = b_c + sum_k W_kc * mean_ij A_ijk, the gradient dy_c/dA_ijk = W_kc / (h*w)
is the same at every position, so Grad-CAM's channel weights (the spatial mean of the
gradient) are W_kc / (h*w) exactly, and the map is ReLU(A . W_c) up to a positive scale
that the normalisation removes. No backward pass: the runtime's one call suffices.

At 150x200 that map has 5x7 cells (``out_relu``'s stride is 32). Finer maps need the class's
gradients at earlier blocks: ``LayerGradCAM``, ``LayerCAM`` (served) and ``FusedCAM`` read them from
the model's gradient file (``Classifier.gradients``, written by training/cam_export.py).
``ShiftedGradCAM`` needs none: Augmented Grad-CAM (Morbidelli et al., ICASSP 2020) with sub-cell
translations, the closed form averaged over copies of the input moved by fractions of a cell.
``python -m training cams`` compares them all; docs/explanations.md has the rule that chose.
"""

from __future__ import annotations

import cv2
import numpy as np

from model.labels import class_index
from model.preprocessing import check_image, prepare_batch
from model.runtime import ClassifierLike


def cam_from_features(features: np.ndarray, kernel: np.ndarray, index: int) -> np.ndarray:
    """(h, w, C) ``out_relu`` features and the (C, 7) head kernel -> (h, w) map in [0, 1]."""
    return _normalised(np.maximum(features @ kernel[:, index], 0.0))


def _normalised(cam: np.ndarray) -> np.ndarray:
    peak = cam.max()
    return (cam / peak if peak > 0 else cam).astype(np.float32)


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a map to (height, width), staying within [0, 1]."""
    height, width = size
    return np.clip(cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


def _moved(array: np.ndarray, dy: float, dx: float, border: int) -> np.ndarray:
    """``array`` with its content moved down by ``dy`` and right by ``dx`` pixels."""
    height, width = array.shape[:2]
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(array, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=border)


class GradCAM:
    """Closed-form Grad-CAM at ``out_relu``: the runtime's one pass, one cell per 32x32 pixels."""

    passes = 1  # runtime calls per map, the classifying one included
    needs_gradients = False  # reads the model's gradient file (``Classifier.gradients``)

    def from_pass(self, clf, inputs: np.ndarray, features: np.ndarray, index: int) -> np.ndarray:
        """The map for class ``index`` from one runtime pass: scaled (H, W, 3) input, its (h, w, C) features."""
        return cam_from_features(features, clf.head_kernel, index)


class ShiftedGradCAM(GradCAM):
    """Grad-CAM averaged over ``steps`` x ``steps`` sub-cell shifts of the input: ``steps**2`` passes."""

    def __init__(self, steps: int = 2):
        self.steps = steps
        self.passes = steps * steps

    def from_pass(self, clf, inputs: np.ndarray, features: np.ndarray, index: int) -> np.ndarray:
        height, width = inputs.shape[:2]
        cell_y, cell_x = height / features.shape[0], width / features.shape[1]
        kernel = clf.head_kernel[:, index]
        total = np.zeros((height, width), np.float32)
        for i in range(self.steps):
            for j in range(self.steps):
                dy, dx = i * cell_y / self.steps, j * cell_x / self.steps
                if i == j == 0:
                    shifted = features  # the classifying pass itself
                else:
                    moved = _moved(inputs, dy, dx, cv2.BORDER_REFLECT)
                    shifted = clf.run(moved[None])[1][0]
                # raw (not each normalised): the copies share one model and one class, so their scales agree
                cam = cv2.resize(np.maximum(shifted @ kernel, 0.0), (width, height), interpolation=cv2.INTER_LINEAR)
                total += _moved(cam, -dy, -dx, cv2.BORDER_REPLICATE)
        return _normalised(total)


class LayerGradCAM(GradCAM):
    """Grad-CAM at an earlier ``layer`` (Selvaraju et al., ICCV 2017): channel weights are the spatial
    mean of the class's gradients there, read from the model's gradient file (one more pass)."""

    passes = 2
    needs_gradients = True

    def __init__(self, layer: str):
        self.layer = layer

    @staticmethod
    def combine(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        return np.maximum(activations @ gradients.mean(axis=(0, 1)), 0.0)

    def from_pass(self, clf, inputs: np.ndarray, features: np.ndarray, index: int) -> np.ndarray:
        return _normalised(self.combine(*clf.gradients(inputs, index)[self.layer]))


class LayerCAM(LayerGradCAM):
    """LayerCAM (Jiang et al., IEEE TIP 2021): each position's channels weighted by their own positive
    gradient, which keeps the detail of shallower layers that Grad-CAM's one weight per channel averages out."""

    @staticmethod
    def combine(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        return np.maximum((np.maximum(gradients, 0.0) * activations).sum(axis=-1), 0.0)


class FusedCAM(GradCAM):
    """The mean of several layers' normalised maps at the input's size, as pytorch-grad-cam fuses layers:
    the closed-form map at ``out_relu`` and LayerCAM at each of ``layers`` (one gradient pass for all)."""

    passes = 2
    needs_gradients = True

    def __init__(self, layers: tuple[str, ...]):
        self.layers = layers

    def from_pass(self, clf, inputs: np.ndarray, features: np.ndarray, index: int) -> np.ndarray:
        size = inputs.shape[:2]
        gradients = clf.gradients(inputs, index)
        maps = [upsample(cam_from_features(features, clf.head_kernel, index), size)]
        maps += [upsample(_normalised(LayerCAM.combine(*gradients[layer])), size) for layer in self.layers]
        return _normalised(np.mean(maps, axis=0))


METHODS: dict[str, GradCAM] = {
    "gradcam": GradCAM(),
    "shifted2": ShiftedGradCAM(2),
    "gradcam-16": LayerGradCAM("block_13_expand_relu"),
    "layercam-16": LayerCAM("block_13_expand_relu"),
    "layercam-8": LayerCAM("block_6_expand_relu"),
    "fused": FusedCAM(("block_13_expand_relu", "block_6_expand_relu")),
}
# the page's map, chosen on validation by `python -m training cams` (docs/explanations.md has the rule);
# a model exported without its gradient model falls back to the closed form
SERVED = "layercam-16"
FALLBACK = "gradcam"


def served_method(clf) -> str:
    """The method the page serves for ``clf``: ``SERVED``, or ``FALLBACK`` when it has no gradient model."""
    has_gradients = getattr(clf, "has_gradients", False)  # a ClassifierLike need not have a gradient model
    return SERVED if has_gradients or not METHODS[SERVED].needs_gradients else FALLBACK


def cam_map(clf: ClassifierLike, inputs: np.ndarray, features: np.ndarray, index: int,
            size: tuple[int, int], method: str | None = None) -> np.ndarray:
    """The ``method`` map (None: the served one) of class ``index`` from a pass already made, at ``size``.

    float32 in [0, 1]. ``inputs``: the pass's scaled (H, W, 3) input; ``features``: its (h, w, C) features.
    """
    return upsample(METHODS[_resolved(clf, method)].from_pass(clf, inputs, features, index), size)


def _resolved(clf, method: str | None) -> str:
    method = served_method(clf) if method is None else method
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def grad_cam(clf: ClassifierLike, image: np.ndarray, label: str | int | None = None,
             method: str | None = None) -> np.ndarray:
    """Grad-CAM of ``label`` (None: the top class) as float32 HxW in [0, 1] at the image's size.

    ``method``: one of ``METHODS``; None: the one the page serves (``served_method``).
    """
    check_image(image)
    method = _resolved(clf, method)  # before the pass: a wrong name costs no model call
    inputs = prepare_batch([image], clf.input_size)
    probs, features = clf.run(inputs)
    return cam_map(clf, inputs[0], features[0], class_index(label, probs[0]), image.shape[:2], method)
