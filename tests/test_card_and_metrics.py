"""The model-card tab's text, and the batch metrics' edge cases (absent classes)."""

from __future__ import annotations

import json
import warnings

import numpy as np

from tests.conftest import ROOT


def test_readers_card_has_the_headline_figures_and_no_recipe_table():
    from app.card import reader_markdown

    card = json.loads((ROOT / "model/shipped/model_card.json").read_text())
    text = reader_markdown(card)
    assert f"| {card['metrics']['test']['balanced_accuracy']:.3f} |" in text
    assert "Uncertain" in text and "May not be a dermoscopic image" in text and "Limitations" in text
    assert "finetune_lr" not in text and "| v3 |" not in text and len(text.splitlines()) < 60


def test_full_card_keeps_no_figure_links_and_no_accidental_list():
    from app.card import full_markdown

    markdown = (ROOT / "model/shipped/MODEL_CARD.md").read_text()
    shown = full_markdown(markdown + "\n- Split by lesion: test 1377 /\n  1009. No lesion has images in two splits.\n"
                          "\n1. a real list\n2. stays a list\n")
    assert "(confusion_test.png)" not in shown and "(roc_test.png)" not in shown
    assert "  1009\\. No lesion" in shown  # escaped: a continuation, not an ordered list
    assert "1. a real list\n2. stays a list" in shown


def test_metrics_with_absent_classes_warn_nothing_and_match_scikit_learn():
    from sklearn.metrics import balanced_accuracy_score

    from model.metrics import classification_metrics

    labels = np.array([0, 0, 4, 4, 5])  # only three classes present
    probs = np.eye(7)[[0, 4, 4, 1, 5]] * 0.9 + 0.1 / 7  # predicts bcc, absent from the truth
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would reach the app's server log
        metrics = classification_metrics(labels, probs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = balanced_accuracy_score(labels, probs.argmax(1))
    assert metrics["balanced_accuracy"] == expected


def test_confusion_figure_says_n_a_for_absent_classes():
    from matplotlib.text import Text

    from model.metrics import confusion_figure

    matrix = np.zeros((7, 7), int)
    matrix[0, 0], matrix[4, 5] = 3, 2
    texts = [t.get_text() for t in confusion_figure(matrix).findobj(Text)]
    assert texts.count("n/a") == 5 * 7  # five absent classes, one row each in the normalised panel


def _trust_card() -> dict:
    """A card with a sanity-check and a ROAD section as the studies write them, figures chosen to read."""
    def road(difference: float, low: float, high: float) -> dict:
        return {"road": {"difference": difference, "ci95": [low, high]}}

    rows = {"road": 0.1, "minus_random": road(0.04, 0.02, 0.06), "minus_centre_prior": road(-0.01, -0.03, 0.01)}
    return {
        "sanity_checks": {
            "stages": ["logits", "Conv_1", "block_16"], "served": {"Grad-CAM": "layercam-16", "LIME": "slic-80"},
            "layercam-16": {"logits": {"spearman": 0.91}, "Conv_1": {"spearman": 0.85}, "block_16": {"spearman": 0.2},
                            "labels shuffled": {"spearman": 0.12},
                            "verdict": {"model_randomisation": False, "label_randomisation": True}},
            "LIME": {"logits": {"spearman": 0.1}, "block_16": {"spearman": 0.05}, "labels shuffled": {"spearman": 0.6},
                     "verdict": {"model_randomisation": True, "label_randomisation": False}},
        },
        "cam_methods": {"test": {"images": 70, "layercam-16": rows}},
        "lime_segmentations": {"test": {"images": 14, "faithfulness": {"slic-80": {
            "road": 0.2, "minus_random": road(0.05, -0.01, 0.1), "minus_centre_prior": road(-0.04, -0.07, -0.01)}}}},
    }


def test_each_maps_caption_says_in_one_sentence_how_far_the_card_showed_it_trustworthy():
    import re

    from app.card import map_trust

    card = _trust_card()
    cam = map_trust(card, "Grad-CAM", "layercam-16")
    assert "stayed much the same when its head was scrambled (rank correlation 0.91" in cam  # where it changed least
    assert "and when the model was fitted to shuffled labels (0.12)" in cam
    assert "better than a random map (+0.040, 95% interval +0.020 to +0.060)" in cam and "on 70 test images" in cam
    assert "no better than a blob in the middle of the picture (-0.010, 95% interval -0.030 to +0.010)" in cam
    lime = map_trust(card, "LIME")
    assert "changed when the model's weights were scrambled block by block (rank correlation with the trained map " \
           "at most 0.10)" in lime
    assert "stayed alike when the model was fitted to shuffled labels (0.60)" in lime
    assert "no better than a random map" in lime and "worse than a blob in the middle" in lime
    for text in (cam, lime):
        assert text.endswith(".") and not re.search(r"\. [A-Z]", text)  # one sentence
    assert map_trust({}, "Grad-CAM", "layercam-16") == "" and map_trust({}, "LIME") == ""  # nothing measured, no claim
    assert map_trust(card, "Grad-CAM", "gradcam") == ""  # another candidate than the card measured: no claim



def test_the_page_quotes_the_shipped_cards_checks_of_the_maps_it_serves():
    from app.card import map_trust
    from explain.gradcam import SERVED
    from explain.lime import SEGMENTATION

    card = json.loads((ROOT / "model/shipped/model_card.json").read_text())
    assert card["sanity_checks"]["served"] == {"Grad-CAM": SERVED, "LIME": SEGMENTATION}  # checked what is served
    for name, method, road in (("Grad-CAM", SERVED, card["cam_methods"]["test"][SERVED]),
                               ("LIME", None, card["lime_segmentations"]["test"]["faithfulness"][SEGMENTATION])):
        text = map_trust(card, name, method)
        assert f"({road['minus_random']['road']['difference']:+.3f}, 95% interval" in text
        assert f"({road['minus_centre_prior']['road']['difference']:+.3f}, 95% interval" in text
        assert "rank correlation" in text


def test_one_list_of_figures_feeds_the_app_tab_and_the_markdown_card():
    from app.card import figures
    from model.card import FIGURES
    from training.card import FIGURES_TEXT

    assert [path.name for path, _ in figures(ROOT / "model/shipped")] == [f.file for f in FIGURES]  # all shipped
    for figure in FIGURES:
        assert (f"]({figure.file})" in FIGURES_TEXT) == (figure.link is not None), figure.file
    assert FIGURES_TEXT in (ROOT / "model/shipped/MODEL_CARD.md").read_text()  # the shipped card's own section
