"""Calibration (temperature scaling) and the two flags: uncertain, not dermoscopic."""

from __future__ import annotations

import numpy as np
import pytest

from model.flags import detail_score, energy_score, flag, structure_score
from model.metrics import expected_calibration_error, fit_temperature, group_accuracy, temper


def _overconfident(n=2000, seed=0):
    """Labels and probabilities from logits that are 3x too sharp."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, 7))
    true_p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(7, p=p) for p in true_p])
    sharp = np.exp(3 * logits)
    return labels, sharp / sharp.sum(1, keepdims=True)


def test_temperature_scaling_recovers_the_temperature_and_cuts_ece():
    labels, probs = _overconfident()
    t = fit_temperature(labels, probs)
    assert t == pytest.approx(3.0, rel=0.15)
    calibrated = temper(probs, t)
    assert expected_calibration_error(labels, calibrated) < 0.03 < expected_calibration_error(labels, probs)
    np.testing.assert_array_equal(calibrated.argmax(1), probs.argmax(1))  # same answers
    np.testing.assert_allclose(calibrated.sum(1), 1, atol=1e-9)


def test_group_accuracy_splits_at_the_threshold():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.55, 0.45]])
    out = group_accuracy(np.array([0, 1, 1, 1]), probs, below=0.7)
    assert out["uncertain_share"] == 0.5
    assert out["accuracy_confident"] == 0.5 and out["accuracy_uncertain"] == 0.5


def test_flags_follow_the_card_thresholds():
    kernel = np.eye(4, 7, dtype=np.float32)
    familiar = np.full((1, 2, 2, 4), 3.0, np.float32)
    odd = np.zeros((1, 2, 2, 4), np.float32)
    features = np.concatenate([familiar, odd])
    probs = np.array([[0.9] + [0.1 / 6] * 6, [0.3] + [0.7 / 6] * 6])
    threshold = float(energy_score(features, kernel).mean())
    card = {"uncertainty": {"threshold": 0.5}, "not_dermoscopic": {"threshold": threshold}}
    confident, unsure = flag(probs, features, kernel, card)
    assert not confident.uncertain and not confident.not_dermoscopic
    assert unsure.uncertain and unsure.not_dermoscopic
    old_card = {"uncertainty": {"threshold": 0.5}, "ood": {"threshold": threshold}}  # the section's old name
    assert flag(probs, features, kernel, old_card) == [confident, unsure]
    no_card = flag(probs, features, kernel, None)
    assert not any(f.not_dermoscopic for f in no_card)  # no calibrated threshold, no OOD claim


def test_structure_score_flags_featureless_images():
    kernel = np.eye(4, 7, dtype=np.float32)
    rng = np.random.default_rng(0)
    lesion_like = rng.uniform(0, 6, (1, 3, 3, 4)).astype(np.float32)  # familiar energy, varies in space
    uniform = np.full((1, 3, 3, 4), lesion_like.mean(), np.float32)  # same energy, the same everywhere
    features = np.concatenate([lesion_like, uniform])
    assert structure_score(features)[1] < 1e-5 < structure_score(features)[0]
    energy = energy_score(features, kernel)
    card = {"not_dermoscopic": {"threshold": float(energy.min()) - 1}}  # energy alone passes both
    assert not any(f.not_dermoscopic for f in flag(np.full((2, 7), 1 / 7), features, kernel, card))
    card["not_dermoscopic"]["structure_threshold"] = float(structure_score(features)[0]) / 2
    lesion, flat = flag(np.full((2, 7), 1 / 7), features, kernel, card)
    assert not lesion.not_dermoscopic and flat.not_dermoscopic


def test_detail_score_flags_flat_inputs_whatever_the_features_say():
    """Zero padding can give a flat image varied features; its pixels still have no detail."""
    from model.preprocessing import prepare_batch

    rng = np.random.default_rng(1)
    textured = rng.integers(90, 200, (60, 80, 3), dtype=np.uint8)
    solid = np.full((60, 80, 3), (180, 40, 40), np.uint8)
    gradient = np.repeat(np.linspace(0, 255, 80, dtype=np.uint8)[None, :, None], 60, 0).repeat(3, 2)
    inputs = prepare_batch([textured, solid, gradient], (60, 80))
    detail = detail_score(inputs)
    assert detail[1] == 0 and detail[2] < 0.05 < detail[0]
    features = rng.uniform(0, 6, (3, 3, 3, 4)).astype(np.float32)  # all three look lesion-like
    kernel = np.eye(4, 7, dtype=np.float32)
    card = {"not_dermoscopic": {"threshold": -1e9, "structure_threshold": 0.0, "detail_threshold": 0.05}}
    probs = np.full((3, 7), 1 / 7)
    assert [f.not_dermoscopic for f in flag(probs, features, kernel, card, inputs)] == [False, True, True]
    assert not any(f.not_dermoscopic for f in flag(probs, features, kernel, card))  # no inputs: not applied


def test_colour_score_flags_grey_pictures_and_spares_a_vignetted_lesion():
    """A grey picture has no chroma at all; a coloured lesion keeps its colour score when a
    vignette blacks out its corners (a high percentile over pixels, not the mean)."""
    from model.flags import colour_score
    from model.preprocessing import prepare_batch
    from training.studies.robustness import vignette

    rng = np.random.default_rng(2)
    lesion = np.clip(rng.normal((190, 130, 110), 15, (60, 80, 3)), 0, 255).astype(np.uint8)
    grey = np.repeat(rng.integers(0, 256, (60, 80, 1), dtype=np.uint8), 3, axis=2)
    inputs = prepare_batch([lesion, vignette(lesion[None], 0.6)[0], grey], (60, 80))
    colour = colour_score(inputs)
    assert colour[2] == 0 and colour[1] == pytest.approx(colour[0], rel=0.1) and colour[0] > 0.3
    features = rng.uniform(0, 6, (3, 3, 3, 4)).astype(np.float32)  # all three look lesion-like
    card = {"not_dermoscopic": {"threshold": -1e9, "structure_threshold": 0.0, "colour_threshold": 0.1}}
    flagged = [f.not_dermoscopic for f in flag(np.full((3, 7), 1 / 7), features, np.eye(4, 7), card, inputs)]
    assert flagged == [False, False, True]


def test_shipped_card_matches_the_serving_path(clf):
    """The card's OOD figure is reproduced by the LiteRT runtime on the same generated images."""
    from model.preprocessing import prepare_batch
    from training.studies.flags import non_dermoscopic_images

    card = clf.card()
    others = non_dermoscopic_images()
    assert len(others) == card["not_dermoscopic"]["non_dermoscopic_images"]
    inputs = prepare_batch([img for _, img in others], clf.input_size)
    probs, features = clf.run(inputs)
    flagged = np.mean([f.not_dermoscopic for f in flag(probs, features, clf.head_kernel, card, inputs)])
    assert flagged == pytest.approx(card["not_dermoscopic"]["non_dermoscopic_flagged"], abs=0.5 / len(others))


def test_shipped_model_has_its_temperature_built_in(clf):
    from model.runtime import KERAS_FILE, SHIPPED_DIR
    from training.network import load_network

    layer = load_network(SHIPPED_DIR / KERAS_FILE).get_layer("temperature")
    assert float(layer.scale) == pytest.approx(1.0 / clf.card()["temperature"], rel=1e-6)


@pytest.mark.parametrize("score", ["detail", "colour"])
def test_cli_and_app_apply_the_input_scores(tmp_path, examples, monkeypatch, score):
    """The serving paths pass their network inputs to the flags: a flat coloured picture is
    flagged by the detail score alone, a textured grey one by the colour score alone (the
    card's other scores switched off here)."""
    import csv
    import io
    from pathlib import Path

    from PIL import Image

    import app.views as views
    from model import load_classifier, load_image
    from model.card import ModelCard
    from model.cli import predict_files

    clf = load_classifier()
    edited = clf.card().to_json()
    off = {"threshold": -1e9, "structure_threshold": -1.0, "detail_threshold": -1.0, "colour_threshold": -1.0}
    edited["not_dermoscopic"] |= off | {f"{score}_threshold": 0.01 if score == "detail" else 0.1}
    clf._card = ModelCard.from_json(edited)
    odd = tmp_path / "odd.png"
    if score == "detail":
        Image.new("RGB", (200, 150), (180, 60, 90)).save(odd)
    else:
        grey = np.random.default_rng(3).integers(0, 256, (150, 200), dtype=np.uint8)
        Image.fromarray(grey).convert("RGB").save(odd)
    lesion = Path(examples[0]["path"])

    out = io.StringIO()
    predict_files([odd, lesion], out, clf, workers=1, progress=False)
    rows = {Path(r["image"]).name: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert rows["odd.png"]["not_dermoscopic"] == "1" and rows[lesion.name]["not_dermoscopic"] == "0"

    monkeypatch.setattr(views, "classifier", lambda: clf)
    for path, expected in ((odd, True), (lesion, False)):
        assert views.flags_of(*views.run_model(load_image(path))).not_dermoscopic is expected
