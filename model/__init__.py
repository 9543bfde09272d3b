"""Skin-lesion classifier: labels, preprocessing, the MobileNetV2 network and its runtime.

    from model import CLASSES, load_classifier
    clf = load_classifier()
    probs = clf.predict(images)  # (N, 7) float32, columns in CLASSES order
"""

from .labels import CLASSES, DESCRIPTIONS, MALIGNANT, NAMES, display_name
from .preprocessing import ImageError, load_image
from .runtime import Classifier, ModelFileError, load_classifier

__all__ = [
    "CLASSES",
    "DESCRIPTIONS",
    "MALIGNANT",
    "NAMES",
    "Classifier",
    "ImageError",
    "ModelFileError",
    "display_name",
    "load_classifier",
    "load_image",
]
