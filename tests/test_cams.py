"""Finer Grad-CAMs: the builtin-op gradients equal TensorFlow's, the gradient model ships checked,
every method keeps grad_cam's contract, and the comparison lands in the card."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest


def _tiny_network():
    """Every op the gradient model rewrites: ReLU6, depthwise convolutions (VALID stride 2 after
    zero padding as in MobileNetV2, SAME stride 1, SAME stride 2), ending in a pooled dense head."""
    import keras

    inputs = keras.Input((17, 23, 3))
    x = keras.layers.Conv2D(8, 1, name="expand")(inputs)
    x = keras.layers.ReLU(6.0, name="a")(x)
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="valid", name="dw_valid")(x)
    x = keras.layers.ReLU(6.0, name="b")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=1, padding="same")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(7, name="logits")(x)
    return keras.Model(inputs, keras.layers.Softmax()(logits))


def test_builtin_gradients_equal_tensorflows_and_convert_with_builtin_ops_only(tmp_path):
    import keras

    from model.runtime import CAM_FILE
    from training.cam_export import cam_function, export_cam_model

    keras.utils.set_random_seed(0)
    network = _tiny_network()
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (4, 17, 23, 3)).astype(np.float32)
    builtin, _ = cam_function(network, ("a", "b"))
    reference, _ = cam_function(network, ("a", "b"), builtin=False)
    for k in range(3):
        onehot = np.eye(7, dtype=np.float32)[[k]]
        got, want = builtin(images[k : k + 1], onehot), reference(images[k : k + 1], onehot)
        for key in want:
            assert np.abs(want[key].numpy()).max() > 0, key  # a gradient that is there to compare
            np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=1e-4, atol=1e-6)
    # the converter is given builtin ops only: a TensorFlow gradient op left in the graph fails here
    entry = export_cam_model(network, tmp_path, images, layers=("a", "b"), half=False)
    assert (tmp_path / CAM_FILE).stat().st_size == entry["bytes"] and len(entry["sha256"]) == 64
    assert max(entry["max_relative_gradient_diff_vs_tensorflow"].values()) < 1e-3
    assert min(entry["min_layercam_correlation_vs_tensorflow"].values()) > 0.9999


def test_cams_writes_the_gradient_model_and_the_comparison_into_the_card(cam_export):
    from explain.gradcam import METHODS, SERVED
    from model.runtime import CAM_FILE, sha256

    card = json.loads((cam_export / "model_card.json").read_text())
    assert card["cam_model"]["sha256"] == sha256(cam_export / CAM_FILE)
    section = card["cam_methods"]
    assert section["served"] == SERVED
    for split in ("val", "test"):
        assert set(METHODS) | {"centre prior", "random"} <= set(section[split])
        assert all(0 <= section[split][m]["energy_in_box"] <= 1 for m in METHODS)
        for m in METHODS:  # ROAD beside deletion, each candidate paired with both image-blind maps
            row = section[split][m]
            assert row["road"] == pytest.approx((row["road_lerf"] - row["road_morf"]) / 2, abs=1e-6)  # float32 means
            assert {"minus_centre_prior", "minus_random"} <= set(row) and "road" in row["minus_random"]
    text = (cam_export / "MODEL_CARD.md").read_text()
    assert "Which Grad-CAM the page serves" in text and "ROAD (remove and debias" in text


def test_every_cam_method_keeps_the_contract_and_is_deterministic(cam_export, shared_data):
    from explain.gradcam import METHODS, grad_cam
    from model.preprocessing import load_image
    from model.runtime import load_classifier

    clf = load_classifier(cam_export)
    image = load_image(next((shared_data / "ham10000" / "images").glob("*.jpg")))
    for method in METHODS:
        cam = grad_cam(clf, image, method=method)
        assert cam.shape == image.shape[:2] and cam.dtype == np.float32, method
        assert 0.0 <= cam.min() and cam.max() <= 1.0, method
        np.testing.assert_array_equal(cam, grad_cam(clf, image, method=method))
    with pytest.raises(ValueError, match="method must be one of"):
        grad_cam(clf, image, method="score-cam")


def test_layer_gradients_are_tensorflows(cam_export):
    """The runtime's gradients (LiteRT) against TensorFlow's on the exported .keras network."""
    from explain.gradcam import LayerCAM
    from model.runtime import load_classifier
    from training.cam_export import cam_function
    from training.network import load_network

    clf = load_classifier(cam_export)
    inputs = np.random.default_rng(1).uniform(-1, 1, (*clf.input_size, 3)).astype(np.float32)
    got = clf.gradients(inputs, 2)
    reference, _ = cam_function(load_network(cam_export / "skin_mobilenetv2.keras"), tuple(got), builtin=False)
    want = reference(inputs[None], np.eye(7, dtype=np.float32)[[2]])
    card = json.loads((cam_export / "model_card.json").read_text())
    assert card["cam_model"]["weights"] == "float16"  # the default: half the file
    for layer, (activations, gradients) in got.items():
        reference_map = LayerCAM.combine(want[f"{layer}_activations"].numpy()[0], want[f"{layer}_gradients"].numpy()[0])
        ours = LayerCAM.combine(activations, gradients)
        assert ours.shape == reference_map.shape
        assert np.corrcoef(ours.ravel(), reference_map.ravel())[0, 1] > 0.98, layer


def test_a_layer_map_without_the_gradient_model_says_how_to_make_it(run_with_extra, shared_data, tmp_path):
    from explain.gradcam import grad_cam
    from model.preprocessing import load_image
    from model.runtime import CAM_FILE, ModelFileError, load_classifier

    export = tmp_path / "export"
    shutil.copytree(run_with_extra / "export", export, ignore=shutil.ignore_patterns(CAM_FILE))
    clf = load_classifier(export)
    image = load_image(next((shared_data / "ham10000" / "images").glob("*.jpg")))
    assert not clf.has_gradients
    # the served map falls back to the closed form, which needs no gradient model
    np.testing.assert_array_equal(grad_cam(clf, image), grad_cam(clf, image, method="gradcam"))
    with pytest.raises(ModelFileError, match="python -m training cams"):
        grad_cam(clf, image, method="layercam-16")


def test_a_tampered_gradient_model_is_refused(cam_export, tmp_path):
    from model.runtime import CAM_FILE, ModelFileError, load_classifier

    export = tmp_path / "export"
    shutil.copytree(cam_export, export)
    with open(export / CAM_FILE, "r+b") as fh:
        fh.seek(-64, 2)
        fh.write(b"\0" * 64)
    clf = load_classifier(export)
    with pytest.raises(ModelFileError, match="SHA-256"):
        clf.gradients(np.zeros((*clf.input_size, 3), np.float32), 0)
