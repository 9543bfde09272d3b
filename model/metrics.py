"""Metrics and figures for a set of predictions: what the model card and the batch tab report."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.optimize import minimize_scalar
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from .labels import CLASSES
from .risk import MALIGNANT_INDEX, malignant_probability


def _average_ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks down each column, ties sharing their mean rank: ``scipy.stats.rankdata`` without
    its dispatch, all columns in one sort."""
    order = np.argsort(scores, axis=0, kind="mergesort")
    ordered = np.take_along_axis(scores, order, axis=0)
    tied = ordered[1:] == ordered[:-1]  # each position against the one before it
    n = len(scores)
    at = np.arange(n).reshape(-1, *([1] * (scores.ndim - 1)))
    first = np.maximum.accumulate(np.where(np.concatenate([np.zeros_like(tied[:1]), tied]), 0, at), axis=0)
    last = np.minimum.accumulate(np.where(np.concatenate([tied, np.zeros_like(tied[:1])]), n, at)[::-1], axis=0)[::-1]
    ranks = np.empty(scores.shape)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=0)
    return ranks


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half): scikit-learn's value, without its
    input checks, which dominate the thousands of calls a bootstrap makes. NaN if a side is empty."""
    positive = np.asarray(positive, bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(scores))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def balanced_accuracy(labels: np.ndarray, probs: np.ndarray, classes: np.ndarray | None = None) -> float:
    """Mean recall over ``classes`` present in ``labels`` (default: all present; predictions of other classes
    count as wrong): scikit-learn's ``balanced_accuracy_score`` of the top class, in numpy, because its input
    checks cost more than the figure in a bootstrap."""
    labels = np.asarray(labels, int)
    if not len(labels):
        return float("nan")
    n = probs.shape[1]
    support = np.bincount(labels, minlength=n)
    hits = np.bincount(labels[probs.argmax(1) == labels], minlength=n)
    kept = np.flatnonzero(support) if classes is None else np.asarray(classes, int)
    kept = kept[support[kept] > 0]
    return float((hits[kept] / support[kept]).mean())


def macro_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over the classes present in ``labels`` (and absent from some images)."""
    labels = np.asarray(labels)
    positive = labels[:, None] == np.arange(probs.shape[1])
    n_pos = positive.sum(axis=0)
    k = np.flatnonzero((n_pos > 0) & (n_pos < len(labels)))
    if not len(k):
        return float("nan")
    n_pos, n_neg = n_pos[k], len(labels) - n_pos[k]
    ranks = _average_ranks(np.asarray(probs)[:, k])
    aucs = (np.where(positive[:, k], ranks, 0).sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return float(np.mean(aucs))


def malignant_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC of P(malignant) for malignant (mel, bcc, akiec) vs benign; NaN if one side is absent."""
    malignant = np.isin(labels, MALIGNANT_INDEX)
    if not 0 < malignant.sum() < len(labels):
        return float("nan")
    return roc_auc(malignant, malignant_probability(probs))


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, balanced accuracy, macro AUC, per-class figures and the confusion matrix."""
    labels = np.asarray(labels)
    pred = probs.argmax(1)
    ks = list(range(len(CLASSES)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, pred, labels=ks, zero_division=0
    )
    malignant = np.isin(labels, MALIGNANT_INDEX)
    p_malignant = malignant_probability(probs)
    flagged = p_malignant >= 0.5
    auc_malignant = malignant_auc(labels, probs)
    per_class = {
        c: {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "support": int(support[k]),
            "auc": roc_auc(labels == k, probs[:, k])
            if 0 < (labels == k).sum() < len(labels)
            else None,
        }
        for k, c in enumerate(CLASSES)
    }
    return {
        "n": int(len(labels)),
        "accuracy": float((pred == labels).mean()),
        "balanced_accuracy": balanced_accuracy(labels, probs),  # warns nothing for an absent class
        "macro_auc": macro_auc(labels, probs),
        "malignant_auc": None if np.isnan(auc_malignant) else auc_malignant,
        "malignant_sensitivity_at_0.5": float(flagged[malignant].mean()) if malignant.any() else None,
        "malignant_specificity_at_0.5": float((~flagged[~malignant]).mean())
        if (~malignant).any()
        else None,
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(labels, pred, labels=ks).tolist(),
    }


def operating_point(labels: np.ndarray, probs: np.ndarray, sensitivity: float = 0.90) -> dict:
    """The highest P(malignant) threshold that still flags ``sensitivity`` of malignant cases."""
    malignant = np.isin(labels, MALIGNANT_INDEX)
    scores = malignant_probability(probs)
    if not malignant.any():
        return {"threshold": 0.5, "target_sensitivity": sensitivity}
    # flagging scores >= t catches every malignant score >= t: take the k-th highest one
    ranked = np.sort(scores[malignant])[::-1]
    k = int(np.ceil(sensitivity * len(ranked)))
    threshold = float(ranked[k - 1])
    flagged = scores >= threshold
    return {
        "threshold": threshold,
        "target_sensitivity": sensitivity,
        "sensitivity": float(flagged[malignant].mean()),
        "specificity": float((~flagged[~malignant]).mean()) if (~malignant).any() else None,
    }


def at_threshold(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """Sensitivity and specificity of flagging P(malignant) >= threshold."""
    malignant = np.isin(labels, MALIGNANT_INDEX)
    flagged = malignant_probability(probs) >= threshold
    return {
        "sensitivity": float(flagged[malignant].mean()) if malignant.any() else None,
        "specificity": float((~flagged[~malignant]).mean()) if (~malignant).any() else None,
    }


def plot_confusion_matrix(matrix, path: str | Path, title: str = "Confusion matrix") -> None:
    """Counts and row-normalised confusion matrices side by side, saved as an image."""
    confusion_figure(matrix, title).savefig(path, dpi=110)


def confusion_figure(matrix, title: str = "Confusion matrix", stacked: bool = False):
    """A matplotlib Figure (Agg backend, no display needed) of the confusion matrix: counts and row-normalised.

    ``stacked`` puts the two panels one above the other, at a larger type: a page scales the figure to its
    width, and side by side on a phone the numbers were 4 px high.
    """
    matrix = np.asarray(matrix)
    normalised = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(5.2, 9.8) if stacked else (12, 5.2))
    axes = fig.subplots(2, 1) if stacked else fig.subplots(1, 2)
    size, ticks = (12, {"fontsize": 12}) if stacked else (9, {})
    for ax, data, fmt, sub in (
        (axes[0], matrix, "d", "counts"),
        (axes[1], normalised, ".2f", "row-normalised (recall on the diagonal)"),
    ):
        ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(CLASSES)):
            absent = matrix[i].sum() == 0  # no image of this class: no recall to show (the tables say n/a)
            for j in range(len(CLASSES)):
                colour = "white" if normalised[i, j] > 0.5 else "black"
                text = "n/a" if absent and fmt != "d" else format(data[i, j], fmt)
                ax.text(j, i, text, ha="center", va="center", color=colour if not absent else "grey", fontsize=size)
        ax.set_xticks(range(len(CLASSES)), CLASSES, **ticks)
        ax.set_yticks(range(len(CLASSES)), CLASSES, **ticks)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(sub)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins (lo, hi]: the gap between confidence and accuracy."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    inside = confidence > 0
    where = np.searchsorted(edges, confidence[inside], side="left") - 1
    count = np.bincount(where, minlength=bins)
    hits = np.bincount(where, weights=correct[inside], minlength=bins)
    sure = np.bincount(where, weights=confidence[inside], minlength=bins)
    used = count > 0
    return float(np.sum(np.abs(hits[used] - sure[used])) / len(labels)) if len(labels) else 0.0


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from softmax(logits): p^(1/T), renormalised."""
    logp = np.log(np.clip(probs, 1e-12, 1)) / temperature
    logp -= logp.max(1, keepdims=True)
    out = np.exp(logp)
    return out / out.sum(1, keepdims=True)


def fit_temperature(labels: np.ndarray, probs: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood (temperature scaling)."""
    def nll(t: float) -> float:
        return float(-np.log(np.clip(temper(probs, t)[np.arange(len(labels)), labels], 1e-12, 1)).mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def group_accuracy(labels: np.ndarray, probs: np.ndarray, below: float) -> dict:
    """Accuracy of the confident (top probability >= below) and uncertain groups."""
    uncertain = probs.max(1) < below
    correct = probs.argmax(1) == labels
    return {
        "threshold": below,
        "uncertain_share": float(uncertain.mean()),
        "accuracy_confident": float(correct[~uncertain].mean()) if (~uncertain).any() else None,
        "accuracy_uncertain": float(correct[uncertain].mean()) if uncertain.any() else None,
    }


def melanoma_recall(labels: np.ndarray, probs: np.ndarray) -> float:
    """Share of melanomas whose top class is melanoma."""
    melanoma = np.asarray(labels) == CLASSES.index("mel")
    return float((probs[melanoma].argmax(1) == CLASSES.index("mel")).mean()) if melanoma.any() else float("nan")


HEADLINE: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "balanced_accuracy": balanced_accuracy,
    "accuracy": lambda labels, probs: float((probs.argmax(1) == labels).mean()),
    "macro_auc": macro_auc,
    "malignant_auc": malignant_auc,
    "melanoma_recall": melanoma_recall,
    "ece": expected_calibration_error,
}


RESAMPLES = 1000  # bootstrap resamples behind every 95% interval the project reports, unless a caller asks fewer


def bootstrap_intervals(
    labels: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray | None = None,
    statistics: dict[Hashable, Callable[[np.ndarray, np.ndarray], float]] = HEADLINE,
    resamples: int = RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> dict[Hashable, list[float]]:
    """Percentile bootstrap intervals of each statistic, resampling whole groups (lesions).

    Images of one lesion are not independent: resampling images would give intervals that are
    too narrow, so the lesions are drawn with replacement and each brings all its images.
    """
    labels = np.asarray(labels)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    _, group_of = np.unique(groups, return_inverse=True)
    by_group = np.argsort(group_of, kind="stable")  # each group's images in a row, from ``starts[g]``
    sizes = np.bincount(group_of)
    starts = np.cumsum(sizes) - sizes
    rng = np.random.default_rng(seed)
    values = {name: [] for name in statistics}
    with warnings.catch_warnings():  # a resample may lack a rare class; its statistics skip it
        warnings.simplefilter("ignore")
        for _ in range(resamples):
            drawn = rng.integers(0, len(sizes), len(sizes))
            # the drawn groups' images one after another, without a Python loop over the groups
            lengths = sizes[drawn]
            offsets = np.repeat(starts[drawn] - (np.cumsum(lengths) - lengths), lengths)
            index = by_group[offsets + np.arange(lengths.sum())]
            for name, statistic in statistics.items():
                values[name].append(statistic(labels[index], probs[index]))
    tail = (1 - level) / 2 * 100
    return {name: [float(v) for v in np.nanpercentile(vals, [tail, 100 - tail])] for name, vals in values.items()}
