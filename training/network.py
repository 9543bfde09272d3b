"""The MobileNetV2 classifier as a Keras model (training, export, reference outputs).

Importing this module imports Keras, which is why it lives in training: nothing under model/ does.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from model.architecture import COLOUR_CHOICES, FEATURE_LAYER, IMAGENET_WEIGHTS, LOGITS_LAYER, REPO_ROOT  # noqa: F401
from model.labels import CLASSES
from model.preprocessing import INPUT_SIZE


@keras.saving.register_keras_serializable(package="skin")
class ShadesOfGray(keras.layers.Layer):
    """Colour constancy (Finlayson & Trezzi, 2004) as the network's first step.

    Each image's illuminant (the Minkowski p-norm mean of each channel) is made grey, which
    undoes a light source's or camera's colour cast. Inside the graph it ships in the LiteRT
    file, so every caller (app, CLI, LIME) gets it with no change to preprocessing.
    Takes and returns MobileNetV2 inputs in [-1, 1].
    """

    def __init__(self, power: int = 6, **kwargs):
        super().__init__(**kwargs)
        self.power = power

    def call(self, x):
        ops = keras.ops
        pixels = (x + 1.0) * 0.5
        illuminant = ops.power(ops.mean(ops.power(pixels, self.power), axis=(1, 2), keepdims=True), 1.0 / self.power)
        gain = ops.mean(illuminant, axis=-1, keepdims=True) / ops.maximum(illuminant, 1e-6)
        return ops.clip(pixels * gain, 0.0, 1.0) * 2.0 - 1.0

    def get_config(self) -> dict:
        return {**super().get_config(), "power": self.power}


@keras.saving.register_keras_serializable(package="skin")
class GrayEqualised(keras.layers.Layer):
    """The earlier seeds' preprocessing as a layer: grayscale, histogram equalisation, three channels.

    Kept for the colour ablation (it matches ``cv2.equalizeHist`` of ``cv2.cvtColor`` to within a
    grey level on 99.9% of pixels). Takes and returns MobileNetV2 inputs in [-1, 1].
    """

    def call(self, x):
        ops = keras.ops
        grey = ops.sum((x + 1.0) * 127.5 * ops.convert_to_tensor([0.299, 0.587, 0.114]), axis=-1)
        level = ops.reshape(ops.cast(ops.floor(grey + 0.5), "int32"), (ops.shape(grey)[0], -1))
        cdf = ops.cumsum(ops.sum(ops.one_hot(level, 256), axis=1), axis=1)  # (N, 256)
        total = cdf[:, -1:]
        first = ops.min(ops.where(cdf > 0, cdf, total), axis=1, keepdims=True)
        table = ops.floor((cdf - first) * 255.0 / ops.maximum(total - first, 1.0) + 0.5)
        equalised = ops.reshape(ops.take_along_axis(table, level, axis=1), ops.shape(grey))
        return ops.repeat(equalised[..., None] / 127.5 - 1.0, 3, axis=-1)


COLOUR = {"none": None, "shades_of_gray": ShadesOfGray, "gray_equalised": GrayEqualised}  # before the base
assert tuple(COLOUR) == COLOUR_CHOICES, "model.architecture names the same colour layers"


def build_network(
    input_size: tuple[int, int] = INPUT_SIZE,
    weights: str | os.PathLike[str] | None = IMAGENET_WEIGHTS,
    dropout: float = 0.2,
    colour: str = "none",
) -> keras.Model:
    """MobileNetV2 (ImageNet weights from a local file) with a pooling -> dense head.

    The base's layers live in the same functional graph as the head (no nested model), so
    ``out_relu`` is reachable for Grad-CAM, and the head is linear after pooling, which
    makes the closed-form Grad-CAM in ``explain`` exact. ``colour`` puts colour constancy
    (``ShadesOfGray``) or the seeds' grey equalisation (``GrayEqualised``) between input and base.
    """
    if colour not in COLOUR:
        raise ValueError(f"colour must be one of {', '.join(COLOUR)}, got {colour!r}")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(
            f"ImageNet weights not found at {weights}; set SKIN_IMAGENET_WEIGHTS or pass weights="
        )
    inputs = keras.Input((*input_size, 3), name="image")
    base = keras.applications.MobileNetV2(
        input_shape=(*input_size, 3),
        input_tensor=COLOUR[colour](name=colour)(inputs) if COLOUR[colour] else inputs,
        include_top=False,
        weights=None if weights is None else str(weights),
    )
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    logits = keras.layers.Dense(len(CLASSES), name=LOGITS_LAYER)(x)
    probs = keras.layers.Softmax(name="probs", dtype="float32")(logits)
    return keras.Model(inputs, probs, name="skin_mobilenetv2")


def serving_model(network: keras.Model) -> keras.Model:
    """The two-output form that is exported: (probabilities, out_relu features)."""
    return keras.Model(
        network.input,
        [network.output, network.get_layer(FEATURE_LAYER).output],
        name=network.name + "_serving",
    )


def head_weights(network: keras.Model):
    """(kernel (C, 7), bias (7,)) of the dense layer that maps pooled features to logits."""
    kernel, bias = network.get_layer(LOGITS_LAYER).get_weights()
    return kernel, bias


def load_network(path: str | os.PathLike[str]) -> keras.Model:
    return keras.models.load_model(path, compile=False)


def calibrated(network: keras.Model, temperature: float) -> keras.Model:
    """The classifier with temperature scaling built in: softmax(logits / T)."""
    logits = network.get_layer(LOGITS_LAYER).output
    scaled = keras.layers.Rescaling(1.0 / temperature, name="temperature")(logits)
    probs = keras.layers.Softmax(name="calibrated_probs", dtype="float32")(scaled)
    return keras.Model(network.input, probs, name=network.name)
