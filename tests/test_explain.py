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

    from training.network import FEATURE_LAYER, LOGITS_LAYER

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
    from model.preprocessing import prepare_batch
    from training.network import load_network

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


def test_box_mask_scales_the_box_to_the_map_and_localisation_scores_read_it():
    from explain.quality import box_mask, centre_prior, energy_share, pointing_hit

    mask = box_mask((75, 100), (30, 90, 40, 120), box_shape=(150, 200))  # box given on the 150x200 file
    assert mask.shape == (75, 100) and mask.sum() == 30 * 40
    assert mask[15:45, 20:60].all() and not mask[:15].any() and not mask[:, 60:].any()

    inside = np.where(mask, 1.0, 0.0)
    assert pointing_hit(inside, mask) and energy_share(inside, mask) == pytest.approx(1.0)
    assert not pointing_hit(1.0 - inside, mask) and energy_share(1.0 - inside, mask) == pytest.approx(0.0)
    assert energy_share(np.ones((75, 100)), mask) == pytest.approx(mask.mean())  # a flat map: the box's area
    assert np.isnan(energy_share(-np.ones((75, 100)), mask))  # nothing positive: no answer
    assert energy_share(inside - 5 * (1 - inside), mask) == pytest.approx(1.0)  # only the positive part counts

    prior = centre_prior((75, 100))
    assert np.unravel_index(prior.argmax(), prior.shape) == (37, 49) and prior[0, 0] < 0.05
    assert pointing_hit(prior, mask)  # a centred lesion: the image-blind map wins the pointing game


class RegionModel:
    """Class 0's probability is the mean brightness of one patch: what a faithful map must point at."""

    input_size = (30, 40)

    def run(self, batch):
        p = (np.asarray(batch)[:, 5:15, 5:15].mean((1, 2, 3)) + 1) / 2
        probs = np.stack([p, 1 - p, *np.zeros((5, len(p)))], axis=1)
        return probs.astype(np.float32), np.zeros((len(p), 1, 1, 1), np.float32)


def test_deletion_falls_fast_and_insertion_rises_fast_when_the_map_points_at_what_the_model_uses():
    from explain.quality import STEPS, deletion_insertion

    image = np.full((60, 80, 3), 20, np.uint8)
    image[10:30, 10:30] = 240  # the patch the model reads, at twice the input size
    right = np.zeros((60, 80), np.float32)
    right[10:30, 10:30] = 1.0
    good = deletion_insertion(RegionModel(), image, right, label=0)
    bad = deletion_insertion(RegionModel(), image, 1.0 - right, label=0)
    for result in (good, bad):
        assert len(result["deletion"]) == len(result["insertion"]) == STEPS + 1
        assert result["deletion"][0] == pytest.approx(result["insertion"][-1])  # the image itself
        assert result["deletion"][-1] == pytest.approx(result["insertion"][0])  # all blurred
        assert result["deletion"][0] > 0.9 > 0.6 > result["deletion"][-1]
    assert good["deletion_auc"] < bad["deletion_auc"] - 0.3
    assert good["insertion_auc"] > bad["insertion_auc"] + 0.3
    assert good["deletion"][1] < 0.6  # the patch is 8% of the pixels: the first tenth removes it


def test_road_imputation_fills_removed_pixels_from_their_neighbours_and_keeps_the_rest():
    from explain.quality import impute_linear

    yy, xx = np.mgrid[:30, :40].astype(np.float32)
    ramp = np.stack([yy / 30, xx / 40, (yy + xx) / 70], axis=-1)  # linear: each pixel is its neighbours' mean
    image = ramp.copy()
    image[10:20, 12:28] = 5.0  # a bright patch the model could read
    removed = np.zeros((30, 40), bool)
    removed[10:20, 12:28] = True
    filled = impute_linear(image, removed, noise=0.0)
    np.testing.assert_array_equal(filled[~removed], image[~removed])  # only the removed pixels change
    np.testing.assert_allclose(filled[removed], ramp[removed], atol=1e-5)  # the surroundings continue inside
    noisy = impute_linear(image, removed, noise=0.01, rng=np.random.default_rng(1))
    assert 0.005 < np.std(noisy[removed] - ramp[removed]) < 0.02
    corner = np.zeros((30, 40), bool)
    corner[:5, :5] = True  # at the border only neighbours inside the image count: a flat skin stays flat
    flat = np.full((30, 40, 3), 0.3, np.float32)
    flat[corner] = -1.0
    np.testing.assert_allclose(impute_linear(flat, corner, noise=0.0)[corner], 0.3, atol=1e-5)


def test_road_falls_when_the_map_removes_what_the_model_reads_first():
    from explain.quality import ROAD_PERCENTILES, road

    image = np.full((60, 80, 3), 20, np.uint8)
    image[10:30, 10:30] = 240  # the patch RegionModel reads
    right = np.zeros((60, 80), np.float32)
    right[10:30, 10:30] = 1.0
    good = road(RegionModel(), image, right, label=0)
    bad = road(RegionModel(), image, 1.0 - right, label=0)
    assert len(good["morf"]) == len(good["lerf"]) == len(ROAD_PERCENTILES)
    assert good["morf"][0] < 0.3  # the first tenth removes the patch: filled with the dark skin around it
    assert good["road_morf"] < bad["road_morf"] - 0.3 and good["road_lerf"] > bad["road_lerf"] + 0.3
    assert good["road"] == pytest.approx((good["road_lerf"] - good["road_morf"]) / 2)
    assert good["road"] > 0.2 > -0.2 > bad["road"]


def test_map_similarity_is_one_for_the_same_map_and_low_for_an_unrelated_one():
    from explain.quality import centre_prior, map_similarity

    prior = centre_prior((30, 40))
    same = map_similarity(prior, 3 * prior + 1)  # ranks and scaled structure do not see scale or offset
    assert same["spearman"] == pytest.approx(1.0) and same["ssim"] == pytest.approx(1.0)
    assert map_similarity(prior, -prior)["spearman"] == pytest.approx(-1.0)
    noise = np.random.default_rng(0).random((30, 40))
    unrelated = map_similarity(prior, noise)
    assert abs(unrelated["spearman"]) < 0.2 and unrelated["ssim"] < 0.3
    flat = map_similarity(prior, np.zeros((30, 40)))
    assert flat["spearman"] == 0.0 and flat["flat"] == 1.0 and unrelated["flat"] == 0.0  # a flat map keeps no ranking
    assert map_similarity(prior, np.kron(prior, np.ones((2, 2))), size=(30, 40))["spearman"] > 0.99


def test_lime_overlay_from_the_weights_alone_matches_the_one_with_segments():
    """The README's `lime_overlay(image, weights)` (what `lime_weights` returns) must draw the same picture."""
    from explain import lime_overlay
    from explain.overlays import segments_of

    rng = np.random.default_rng(0)
    segments = np.kron(np.arange(12).reshape(3, 4), np.ones((20, 25), int))  # 12 blocks of 20x25
    per_segment = rng.normal(size=12).astype(np.float32)
    per_segment[[3, 9]] = 0.0  # not adjacent: still two regions
    weights = per_segment[segments]
    image = rng.integers(0, 255, (60, 100, 3), dtype=np.uint8)
    assert len(np.unique(segments_of(weights))) == 12
    np.testing.assert_array_equal(lime_overlay(image, weights), lime_overlay(image, weights, segments))


def test_explain_takes_any_classifier_like_object(clf, example_image):
    """explain/ needs only the runtime's call, the input size and the head (model.runtime.ClassifierLike)."""
    from model.runtime import ClassifierLike, Output

    class Wrapped:  # another runtime, as a user might bring one
        input_size = clf.input_size
        head_kernel = clf.head_kernel

        def run(self, batch):
            return clf.run(batch)

        def predict_with_features(self, images):
            return clf.predict_with_features(images)

    wrapped: ClassifierLike = Wrapped()
    out = wrapped.run(np.zeros((1, *clf.input_size, 3), np.float32))
    assert isinstance(out, Output) and out.probs.shape == (1, 7) and out.features.ndim == 4
    # no gradient model: the served map falls back to the closed form, as for a model exported without one
    np.testing.assert_array_equal(grad_cam(wrapped, example_image), grad_cam(clf, example_image, method="gradcam"))
    np.testing.assert_array_equal(lime_weights(wrapped, example_image, num_samples=100),
                                  lime_weights(clf, example_image, num_samples=100))
