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
