"""Why the model answered as it did: Grad-CAM, LIME and their overlays.

    from explain import grad_cam, lime_weights
    cam = grad_cam(clf, image)            # float32 HxW in [0, 1]
    weights = lime_weights(clf, image)    # float32 HxW, positive supports the class
    cases = similar_cases(clf, image)     # the 6 closest training images, with their diagnoses

Names load on first use (PEP 562): lime, scikit-learn, scikit-image and matplotlib take about
2 s to import on 2 cores, and the app answers its first request before it needs them. This is the
one lazy import in explain/ (its modules import at the top); the app loads them all once it is
serving (``load_all``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_WHERE = {
    "grad_cam": ".gradcam",
    "LimeResult": ".lime",
    "explain_lime": ".lime",
    "lime_weights": ".lime",
    "gradcam_overlay": ".overlays",
    "lime_overlay": ".overlays",
    "similar_cases": ".similar",
}

__all__ = ["LimeResult", "explain_lime", "grad_cam", "gradcam_overlay", "lime_overlay", "lime_weights", "similar_cases"]

if TYPE_CHECKING:
    from .gradcam import grad_cam
    from .lime import LimeResult, explain_lime, lime_weights
    from .overlays import gradcam_overlay, lime_overlay
    from .similar import similar_cases


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'explain' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_all() -> None:
    """Import everything now (the app calls this once it is serving)."""
    for module in set(_WHERE.values()):
        importlib.import_module(module, __name__)
