"""LIME's segmentation choice: every candidate keeps explain_lime's contract; the study's metric and card."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_top_support_in_box_reads_the_five_strongest_supporting_superpixels():
    from training.studies.segmentations import top_support_in_box

    segments = np.repeat(np.arange(8), 10)[None, :].repeat(4, axis=0)  # 8 vertical bands of 10 columns
    weights_of = np.array([0.9, 0.8, -1.0, 0.7, 0.6, 0.5, 0.1, 0.0])  # top five positive: 0, 1, 3, 4, 5
    weights = weights_of[segments]
    mask = np.zeros_like(segments, dtype=bool)
    mask[:, :20] = True  # bands 0 and 1
    assert top_support_in_box(weights, segments, mask) == pytest.approx(2 / 5)
    assert np.isnan(top_support_in_box(-np.abs(weights) - 0.1, segments, mask))  # nothing supports the class


def test_every_segmentation_gives_a_deterministic_explanation(clf, example_image):
    from explain.lime import SEGMENTATION, SEGMENTATIONS, explain_lime

    assert SEGMENTATION in SEGMENTATIONS
    for name in SEGMENTATIONS:
        first = explain_lime(clf, example_image, num_samples=60, segmentation=name)
        assert first.weights.shape == example_image.shape[:2] and first.weights.dtype == np.float32, name
        assert first.segments.max() >= 1, name
        np.testing.assert_array_equal(first.weights,
                                      explain_lime(clf, example_image, num_samples=60, segmentation=name).weights)
    with pytest.raises(ValueError, match="segmentation must be one of"):
        explain_lime(clf, example_image, num_samples=60, segmentation="watershed")


def test_segmentations_study_writes_its_table_into_the_card(run_with_extra, shared_data, tmp_path):
    import shutil

    from explain.lime import SEGMENTATION, SEGMENTATIONS
    from training.studies.segmentations import measure_exported

    export = tmp_path / "export"
    shutil.copytree(run_with_extra / "export", export)
    section = measure_exported(export, shared_data / "ham10000", images=3, samples=40)
    card = json.loads((export / "model_card.json").read_text())
    assert card["lime_segmentations"]["served"] == SEGMENTATION
    for split in ("val", "test"):
        assert set(SEGMENTATIONS) <= set(section[split])
        others = [n for n in SEGMENTATIONS if n != SEGMENTATION]
        assert all("minus_" + SEGMENTATION in section[split][n] for n in others)
        faithfulness = section[split]["faithfulness"]  # ROAD and deletion, paired with both image-blind maps
        assert {"centre prior", "random"} <= set(faithfulness)
        assert all({"minus_centre_prior", "minus_random"} <= set(faithfulness[n]) for n in SEGMENTATIONS)
    text = (export / "MODEL_CARD.md").read_text()
    assert "Which superpixels LIME perturbs" in text and "ROAD (remove and debias" in text
