"""Grad-CAM (closed form vs GradientTape), LIME (deterministic, same as stock LIME), overlays."""

from __future__ import annotations

import numpy as np
import pytest

from explain import explain_lime, grad_cam, gradcam_overlay, lime_overlay, lime_weights
from explain.lime import BatchedLimeImageExplainer
from model.runtime import KERAS_FILE, SHIPPED_DIR


def gradcam_reference(network, batch: np.ndarray, index: int) -> np.ndarray:
    """Textbook Grad-CAM (the Keras example): tape gradients of the class logit w.r.t. out_relu."""
    import keras
    import tensorflow as tf

    from model.network import FEATURE_LAYER, LOGITS_LAYER

    grad_model = keras.Model(
        network.input, [network.get_layer(FEATURE_LAYER).output, network.get_layer(LOGITS_LAYER).output]
    )
    with tf.GradientTape() as tape:
        features, logits = grad_model(batch, training=False)
        score = logits[:, index]
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(0, 1, 2))
    cam = tf.nn.relu(tf.reduce_sum(features[0] * weights, axis=-1)).numpy()
    return cam / cam.max() if cam.max() > 0 else cam


@pytest.mark.parametrize("label", [None, "mel", 5])
def test_closed_form_gradcam_matches_gradient_tape(clf, examples, label):
    from explain.gradcam import cam_from_features
    from model import load_image
    from model.labels import class_index
    from model.network import load_network
    from model.preprocessing import prepare_batch

    network = load_network(SHIPPED_DIR / KERAS_FILE)
    for example in examples[:3]:
        image = load_image(example["path"])
        batch = prepare_batch([image], clf.input_size)
        probs, features = clf.run(batch)
        index = class_index(label, probs[0])
        fast = cam_from_features(features[0], clf.head_kernel, index)
        np.testing.assert_allclose(fast, gradcam_reference(network, batch, index), atol=1e-4)


def test_grad_cam_contract(clf, example_image):
    cam = grad_cam(clf, example_image)
    assert cam.shape == example_image.shape[:2] and cam.dtype == np.float32
    assert cam.min() >= 0 and cam.max() <= 1 and cam.max() > 0.9
    other = grad_cam(clf, example_image, label="vasc")
    assert not np.allclose(cam, other)


def test_lime_is_deterministic_and_at_image_size(clf, example_image):
    a = lime_weights(clf, example_image, num_samples=150, random_state=3)
    b = lime_weights(clf, example_image, num_samples=150, random_state=3)
    assert a.shape == example_image.shape[:2] and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() > 0


def test_lime_label_selects_the_class(clf, example_image):
    from model import CLASSES

    top = explain_lime(clf, example_image, num_samples=150)
    assert top.label == int(clf.predict([example_image])[0].argmax())
    code = CLASSES[(top.label + 1) % len(CLASSES)]  # another class, by its code
    other = explain_lime(clf, example_image, label=code, num_samples=150)
    assert other.label == CLASSES.index(code)
    assert not np.allclose(top.weights, other.weights)


@pytest.mark.parametrize("scaled", [False, True], ids=["uint8", "scaled float"])
def test_batched_perturbation_equals_stock_lime(clf, example_image, scaled):
    """Same seed, same samples, same labels: the vectorised loop changes speed only."""
    from lime.lime_image import LimeImageExplainer
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    from model.preprocessing import resize, scale

    small = resize(example_image, clf.input_size)
    segmenter = SegmentationAlgorithm("slic", n_segments=40, compactness=10, sigma=1, start_label=0,
                                      random_seed=0)

    def fn(batch):
        batch = np.asarray(batch, np.float32)
        return clf.run(batch if scaled else scale(batch))[0]

    if scaled:  # what explain_lime does: perturb network inputs, superpixels from the 8-bit image
        segments = segmenter(small)
        segmenter = lambda _: segments  # noqa: E731
        small = scale(small.astype(np.float32))

    runs = []
    for cls in (LimeImageExplainer, BatchedLimeImageExplainer):
        exp = cls(random_state=0).explain_instance(
            small, fn, labels=(4,), top_labels=None, num_samples=120, batch_size=50,
            segmentation_fn=segmenter, random_seed=0,
        )
        runs.append(dict(exp.local_exp[4]))
    assert runs[0].keys() == runs[1].keys()
    for k in runs[0]:
        assert runs[0][k] == pytest.approx(runs[1][k], abs=1e-6)


def test_overlays_are_rgb_images_of_the_input_size(clf, example_image):
    cam = grad_cam(clf, example_image)
    over = gradcam_overlay(example_image, cam, alpha=0.5)
    assert over.shape == example_image.shape and over.dtype == np.uint8
    assert not np.array_equal(over, example_image)
    result = explain_lime(clf, example_image, num_samples=100)
    lime_img = lime_overlay(example_image, result.weights, result.segments, top_k=3)
    assert lime_img.shape == example_image.shape and lime_img.dtype == np.uint8
    changed = np.any(lime_img != example_image, axis=-1)
    assert 0.01 < changed.mean() < 0.9  # some superpixels are marked, not the whole image
