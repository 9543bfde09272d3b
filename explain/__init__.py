"""Why the model answered as it did: Grad-CAM, LIME and their overlays.

    from explain import grad_cam, lime_weights
    cam = grad_cam(clf, image)            # float32 HxW in [0, 1]
    weights = lime_weights(clf, image)    # float32 HxW, positive supports the class
"""

from .gradcam import grad_cam
from .lime import LimeResult, explain_lime, lime_weights
from .overlays import gradcam_overlay, lime_overlay

__all__ = ["LimeResult", "explain_lime", "grad_cam", "gradcam_overlay", "lime_overlay", "lime_weights"]
