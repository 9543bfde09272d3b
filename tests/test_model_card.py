"""model.card: the typed card serving reads, from every card's JSON (older names included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.card import DEFAULT_MALIGNANT_THRESHOLD, DEFAULT_UNCERTAIN_BELOW, ModelCard

ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_card_reads_into_typed_fields_and_stays_a_mapping_of_its_json():
    raw = json.loads((ROOT / "model/shipped/model_card.json").read_text())
    card = ModelCard.read(ROOT / "model/shipped/model_card.json")
    assert card.version == raw["version"]
    assert card.operating_point.threshold == pytest.approx(raw["malignant_operating_point"]["threshold"])
    assert card.uncertain_below == pytest.approx(raw["uncertainty"]["threshold"])
    assert card.not_dermoscopic.energy == pytest.approx(raw["not_dermoscopic"]["threshold"])
    assert card.metrics["test"].balanced_accuracy == pytest.approx(raw["metrics"]["test"]["balanced_accuracy"])
    assert card["training"]["command"] == raw["training"]["command"] and dict(card) == raw
    copied = card.to_json()
    copied["version"] = "edited"
    assert card.version == raw["version"] and card["version"] == raw["version"]  # a copy, not a view


def test_no_card_means_every_default_and_the_new_name_is_read_too(tmp_path):
    empty = ModelCard.read(tmp_path / "missing.json")
    assert empty.operating_point.threshold == DEFAULT_MALIGNANT_THRESHOLD
    assert empty.uncertain_below == DEFAULT_UNCERTAIN_BELOW and empty.not_dermoscopic.by_score() == {}
    renamed = ModelCard.from_json({"not_dermoscopic": {"threshold": 3.0, "colour_threshold": 0.1}})
    assert renamed.not_dermoscopic.by_score() == {"energy": 3.0, "colour": 0.1}


def test_serving_decides_with_the_typed_fields():
    import numpy as np

    from model.flags import flag
    from model.risk import assess

    probs = np.array([[0.3, 0.0, 0.25, 0.0, 0.25, 0.2, 0.0]], np.float32)  # P(malignant) = 0.55, top 0.3
    card = ModelCard.from_json({"malignant_operating_point": {"threshold": 0.6}, "uncertainty": {"threshold": 0.25}})
    assert not assess(probs[0], card).suspicious and assess(probs[0], {}).suspicious  # 0.55 vs 0.6 and vs 0.5
    features = np.ones((1, 2, 2, 4), np.float32)
    assert not flag(probs, features, np.eye(4, 7), card)[0].uncertain  # 0.3 >= 0.25
    assert flag(probs, features, np.eye(4, 7), {})[0].uncertain  # 0.3 < the default 0.5


def test_the_sections_the_app_reads_are_typed_and_an_old_card_without_them_loads():
    raw = json.loads((ROOT / "model/shipped/model_card.json").read_text())
    card = ModelCard.from_json(raw)
    assert card.classes == tuple(raw["classes"]) and card.temperature == pytest.approx(raw["temperature"])
    assert (card.input_size.height, card.input_size.width) == (raw["input_size"]["height"], raw["input_size"]["width"])
    assert card.preprocessing == raw["preprocessing"] and card.data.images == raw["data"]["images"]
    mel = raw["metrics"]["test"]["per_class"]["mel"]
    assert card.metrics["test"].per_class["mel"].recall == pytest.approx(mel["recall"])
    assert card.metrics["test"].interval("accuracy") == tuple(raw["metrics"]["test"]["ci95"]["accuracy"])
    assert card.uncertainty.test.uncertain_share == pytest.approx(raw["uncertainty"]["test"]["uncertain_share"])
    point = raw["malignant_operating_point"]
    assert card.operating_point.measured and card.operating_point.chosen_on == point["chosen_on"]
    for name, entry in raw["files"].items():
        assert card.files[name].sha256 == entry["sha256"]
    assert card.similar_cases.file == raw["similar_cases"]["file"] and card.similar_cases.k == raw["similar_cases"]["k"]
    assert card.cam_methods.served == raw["cam_methods"]["served"]
    assert card.segmentations.served == raw["lime_segmentations"]["served"]
    assert card.section("sanity_checks") == raw["sanity_checks"] and card.section("no such study") == {}
    old = ModelCard.from_json({"version": "v1", "metrics": {"test": {"accuracy": 0.5}},
                               "uncertainty": {"threshold": 0.4, "test": {"uncertain_share": 0.1}}})
    assert old.input_size is None and old.temperature is None and old.similar_cases is None and old.files == {}
    assert old.cam_methods is None and old.segmentations is None and not old.operating_point.measured
    assert old.uncertainty.test is None and old.uncertain_below == 0.4
    assert old.metrics["test"].interval("accuracy") is None
