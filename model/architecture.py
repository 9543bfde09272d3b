"""What the network is called and made of, without importing Keras.

Training's options, ``--help`` and the recipe table need these names; importing
``training.network`` would load TensorFlow (seconds, and its log lines) just to print them.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGENET_WEIGHTS = Path(
    os.environ.get(
        "SKIN_IMAGENET_WEIGHTS",
        REPO_ROOT.parent / "shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    )
)
FEATURE_LAYER = "out_relu"  # last convolutional activation: what Grad-CAM explains
LOGITS_LAYER = "logits"
COLOUR_CHOICES = ("none", "shades_of_gray", "gray_equalised")  # the first layers of training.network.COLOUR
