"""The gradient model that finer Grad-CAMs read: earlier layers' activations and the class's gradients.

The serving flatbuffer answers with ``out_relu`` (5x7 cells at 150x200), where Grad-CAM needs no
gradient (explain/gradcam.py). Finer maps need dy_c/dA at an earlier block, which means a backward
pass through the network's tail. LiteRT's builtin ops have no kernel for two gradients TensorFlow
emits there (ReLU6's and the depthwise convolution's input gradient), so the graph is traced with
both replaced by equivalent builtin ops: a mask multiply, and a depthwise convolution of the
(zero-dilated) gradient with the spatially flipped kernel. ``export_cam_model`` checks the result
against TensorFlow's own gradients on the same input.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from explain.gradcam import LayerCAM
from model.architecture import LOGITS_LAYER
from model.runtime import CAM_FILE, CAM_LAYERS, CAM_SIGNATURE, sha256

_REGISTERED = False


def _register_builtin_gradients() -> None:
    """Gradients of Relu6 and DepthwiseConv2dNative written with ops LiteRT has (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return

    @tf.RegisterGradient("Relu6BuiltinGrad")
    def _relu6(op, grad):
        x = op.inputs[0]
        return grad * tf.cast(tf.logical_and(x > 0, x < 6), grad.dtype)

    @tf.RegisterGradient("DepthwiseBuiltinGrad")
    def _depthwise(op, grad):
        x, kernel = op.inputs
        stride = op.get_attr("strides")[1]
        padding = op.get_attr("padding").decode()
        kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
        n, h, w, c = (int(d) for d in x.shape)
        ho, wo = int(grad.shape[1]), int(grad.shape[2])
        if padding == "SAME":  # TensorFlow's: the extra row or column of padding goes after
            top = max((ho - 1) * stride + kh - h, 0) // 2
            left = max((wo - 1) * stride + kw - w, 0) // 2
        else:
            top, left = 0, 0
        g = grad
        if stride > 1:  # put the gradient back on the input's grid: zeros between its samples
            zeros = [tf.zeros_like(g)] * (stride - 1)
            g = tf.reshape(tf.stack([g, *zeros], axis=2), (n, stride * ho, wo, c))[:, : stride * (ho - 1) + 1]
            zeros = [tf.zeros_like(g)] * (stride - 1)
            g = tf.reshape(tf.stack([g, *zeros], axis=3), (n, int(g.shape[1]), stride * wo, c))
            g = g[:, :, : stride * (wo - 1) + 1]
        gh, gw = int(g.shape[1]), int(g.shape[2])
        # full correlation with the flipped kernel, cropped to the input's extent
        pads = [[0, 0], [kh - 1 - top, h + top - gh], [kw - 1 - left, w + left - gw], [0, 0]]
        flipped = tf.reverse(kernel, axis=[0, 1])
        return tf.nn.depthwise_conv2d(tf.pad(g, pads), flipped, [1, 1, 1, 1], "VALID"), None

    _REGISTERED = True


def cam_function(network, layers: tuple[str, ...] = CAM_LAYERS, builtin: bool = True):
    """tf.function (image (1, H, W, 3), onehot (1, 7)) -> each layer's activations and d(onehot . logits)/d them."""
    if builtin:
        _register_builtin_gradients()
    height, width = network.input.shape[1:3]
    inner = keras.Model(network.input, [network.get_layer(name).output for name in layers]
                        + [network.get_layer(LOGITS_LAYER).output])
    overrides = {"Relu6": "Relu6BuiltinGrad", "DepthwiseConv2dNative": "DepthwiseBuiltinGrad"} if builtin else {}

    @tf.function(input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32, name="image"),
                                  tf.TensorSpec([1, 7], tf.float32, name="onehot")])
    def cam(image, onehot):
        with tf.compat.v1.get_default_graph().gradient_override_map(overrides):
            *activations, logits = inner(image, training=False)
        gradients = tf.gradients(tf.reduce_sum(logits * onehot), activations)
        out = {}
        for name, a, g in zip(layers, activations, gradients, strict=True):
            out[f"{name}_activations"], out[f"{name}_gradients"] = a, g
        return out

    return cam, inner


def export_cam_model(network, out_dir: str | Path, check_images: np.ndarray, layers: tuple[str, ...] = CAM_LAYERS,
                     half: bool = True) -> dict:
    """Write ``CAM_FILE`` beside the served model; its file entry and its check against TensorFlow.

    ``half`` stores float16 weights (computed in float32): half the file (9 MB for MobileNetV2 at
    150x200 instead of 18). Single gradients then differ from TensorFlow's by up to about half their
    largest value where a ReLU6 flips, but the maps built from them agree (the check records the
    lowest correlation of each layer's LayerCAM map with TensorFlow's, and the largest gradient difference).
    """
    out_dir = Path(out_dir)
    cam, inner = cam_function(network, layers)
    module = tf.Module()
    module.weights = [w.value for w in inner.weights]  # Keras 3 variables, as TensorFlow tracks them
    module.cam = cam
    with tempfile.TemporaryDirectory() as saved:
        tf.saved_model.save(module, saved, signatures={CAM_SIGNATURE: cam.get_concrete_function()},
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[CAM_SIGNATURE])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if half:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        (out_dir / CAM_FILE).write_bytes(converter.convert())
    reference, _ = cam_function(network, layers, builtin=False)
    runner = Interpreter(model_path=str(out_dir / CAM_FILE), num_threads=2).get_signature_runner(CAM_SIGNATURE)
    gradient_diff, map_correlation = {}, {}
    for i, image in enumerate(check_images[:4]):
        onehot = np.eye(7, dtype=np.float32)[[i % 7]]
        want = {k: v.numpy() for k, v in reference(image[None].astype(np.float32), onehot).items()}
        got = runner(image=image[None].astype(np.float32), onehot=onehot)
        for layer in layers:
            a, g = f"{layer}_activations", f"{layer}_gradients"
            scale = float(np.abs(want[g]).max()) or 1.0
            gradient_diff[layer] = max(gradient_diff.get(layer, 0.0), float(np.abs(got[g] - want[g]).max()) / scale)
            # the check's unit is the map the page would show
            ours, theirs = LayerCAM.combine(got[a], got[g]).ravel(), LayerCAM.combine(want[a], want[g]).ravel()
            r = float(np.corrcoef(ours, theirs)[0, 1]) if ours.std() > 0 and theirs.std() > 0 else float(
                np.allclose(ours, theirs))
            map_correlation[layer] = min(map_correlation.get(layer, 1.0), r)
    return {"layers": list(layers), "weights": "float16" if half else "float32",
            "sha256": sha256(out_dir / CAM_FILE), "bytes": (out_dir / CAM_FILE).stat().st_size,
            "check_images": int(min(len(check_images), 4)),
            "max_relative_gradient_diff_vs_tensorflow": gradient_diff,
            "min_layercam_correlation_vs_tensorflow": map_correlation}
