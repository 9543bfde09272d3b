"""The selection rule of docs/selection-rule.md: its figures, its thresholds and its verdict.

What decides whether a candidate replaces the shipped model, written once: the rule's balanced
accuracy (over the classes a set has enough images of), G (its mean over the validation sets),
E (balanced accuracy under the editing shifts), the checks a candidate's paired differences must
pass, and how a recorded comparison is read back (``judged``, ``per_set``: the card renders them).
Plain numbers in, plain numbers out: scoring the sets is ``training.external``'s, pairing and
recording a choice ``training.selection.choose``'s.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from model.metrics import balanced_accuracy

RULE = "docs/selection-rule.md"
RULE_MIN_GAIN = 0.01  # G must rise by this much over the shipped model
RULE_MAX_ECE = 0.05
RULE_MIN_CLASS_IMAGES = 5  # the rule's balanced accuracy counts only classes a set has this many images of
PAIRED = ("balanced_accuracy", "macro_auc", "melanoma_recall", "melanoma_auc")  # candidate minus shipped
RULE_FIGURE = "rule_balanced_accuracy"
RULE_MIN_EDITED_GAIN = 0.05  # or E, balanced accuracy under the editing shifts, rises this much (G not falling)


def rule_classes(labels: np.ndarray) -> np.ndarray:
    """The classes the rule's balanced accuracy counts: those with at least RULE_MIN_CLASS_IMAGES images.

    One image of a class moves a balanced accuracy by a share of 1 / (number of classes): on ISIC 2018
    validation's single dermatofibroma, 0.143. A set with no class that large counts them all.
    """
    classes, counts = np.unique(labels, return_counts=True)
    kept = classes[counts >= RULE_MIN_CLASS_IMAGES]
    return kept if len(kept) else classes


def rule_statistic(labels: np.ndarray) -> Callable[[np.ndarray, np.ndarray], float]:
    """Balanced accuracy over the rule's classes of the whole set, kept fixed across bootstrap resamples."""
    classes = rule_classes(labels)
    return lambda y, probs: balanced_accuracy(y, probs, classes)


def generalisation(section: dict) -> float:
    """G: the mean over the sets of the rule's balanced accuracy."""
    return float(np.mean([s[RULE_FIGURE] for s in section.values()]))


def edited_balanced_accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """E: balanced accuracy averaged over the edits of (N, edits, classes) probabilities
    (``training.studies.robustness.edited``)."""
    return float(np.mean([balanced_accuracy(labels, probs[:, k]) for k in range(probs.shape[1])]))


def verdict(differences: dict, candidate_ham_ece: float, sets: list) -> dict:
    """The rule of docs/selection-rule.md (as it reads from v25 on) on one candidate's paired differences.

    Check 1 passes on G, or on E (``differences["edited"]``) where G does not fall.
    """
    ham, edits = differences["ham_val"], differences.get("edited")
    robust = edits is not None and differences["G"] >= 0 and edits["difference"] >= RULE_MIN_EDITED_GAIN \
        and edits["ci95"][0] > 0
    checks = {
        f"G rises by >= {RULE_MIN_GAIN}, or G >= 0 and E rises by >= {RULE_MIN_EDITED_GAIN} (interval above 0)":
            differences["G"] >= RULE_MIN_GAIN or robust,
        **{f"{s.name}: paired interval's upper end >= 0": differences[s.name][RULE_FIGURE]["ci95"][1] >= 0
           for s in sets},
        f"HAM10000 validation ECE <= {RULE_MAX_ECE}": candidate_ham_ece <= RULE_MAX_ECE,
        "ham_val: difference >= 0": ham[RULE_FIGURE]["difference"] >= 0,
        "ham_val: melanoma recall interval's upper end >= 0": ham["melanoma_recall"]["ci95"][1] >= 0,
    }
    return {"checks": checks, "passes": all(checks.values())}


def per_set(paired: dict) -> dict:
    """The per-set entries of a candidate's paired differences (without G and the edited images' E)."""
    return {k: v for k, v in paired.items() if k not in ("G", "edited")}


def judged(difference: dict) -> dict:
    """The balanced accuracy the rule judged a set on: over its counted classes from v25 on."""
    return difference.get("rule_balanced_accuracy", difference["balanced_accuracy"])
