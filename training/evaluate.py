"""Training-run figures: curves, ROC, reliability, misclassified images with Grad-CAM.

The metrics themselves live in ``model.metrics`` (the app uses them too).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from explain.gradcam import cam_from_features, upsample
from explain.overlays import gradcam_overlay
from model.labels import CLASSES
from model.metrics import (  # noqa: F401 - re-exported for training code and tests
    at_threshold,
    classification_metrics,
    expected_calibration_error,
    macro_auc,
    operating_point,
    plot_confusion_matrix,
)
from model.risk import MALIGNANT_INDEX, malignant_probability


def plot_history(history: list[dict], path: str | Path) -> None:
    """Training loss and validation metrics per epoch, phases marked."""
    matplotlib.use("Agg")

    x = np.arange(1, len(history) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(x, [h["loss"] for h in history], "o-", label="train loss (weighted)")
    axes[0].plot(x, [h["val_loss"] for h in history], "o-", label="val loss")
    axes[0].set_xlabel("epoch")
    axes[0].legend()
    for key in ("val_balanced_accuracy", "val_macro_auc", "val_accuracy"):
        axes[1].plot(x, [h[key] for h in history], "o-", label=key.removeprefix("val_"))
    axes[1].set_xlabel("epoch")
    axes[1].set_title("validation")
    axes[1].legend()
    phases = [h["phase"] for h in history]
    for ax in axes:
        for i in range(1, len(phases)):
            if phases[i] != phases[i - 1]:
                ax.axvline(i + 0.5, color="grey", ls="--", lw=1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figure(figsize: tuple[float, float]):
    return Figure(figsize=figsize)


def plot_roc_curves(labels: np.ndarray, probs: np.ndarray, path: str | Path, title: str = "ROC curves") -> None:
    """One-vs-rest ROC curve per class, and malignant (mel+bcc+akiec) vs benign, AUC in the legend."""
    fig = _figure((12, 5.2))
    per_class, risk = fig.subplots(1, 2)
    for k, name in enumerate(CLASSES):
        truth = labels == k
        if 0 < truth.sum() < len(labels):
            fpr, tpr, _ = roc_curve(truth, probs[:, k])
            per_class.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(truth, probs[:, k]):.3f}, n={truth.sum()})")
    malignant = np.isin(labels, MALIGNANT_INDEX)
    if 0 < malignant.sum() < len(labels):
        score = malignant_probability(probs)
        fpr, tpr, _ = roc_curve(malignant, score)
        risk.plot(fpr, tpr, color="darkred", label=f"AUC {roc_auc_score(malignant, score):.3f}")
    for ax, sub in ((per_class, "one vs rest, per class"), (risk, "malignant vs benign, P(mel+bcc+akiec)")):
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
        ax.set_xlabel("false positive rate (1 - specificity)")
        ax.set_ylabel("true positive rate (sensitivity)")
        ax.set_title(sub)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_reliability(labels: np.ndarray, raw: np.ndarray, calibrated: np.ndarray, path: str | Path,
                     bins: int = 15, title: str = "Reliability") -> None:
    """Accuracy against confidence in equal-width bins, before and after temperature scaling."""
    edges = np.linspace(0, 1, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    fig = _figure((11, 4.6))
    for ax, probs, sub in zip(fig.subplots(1, 2), (raw, calibrated), ("before calibration", "after (temperature)"),
                              strict=True):
        confidence, correct = probs.max(1), probs.argmax(1) == labels
        which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
        counts = np.bincount(which, minlength=bins)
        accuracy = np.bincount(which, weights=correct, minlength=bins) / np.maximum(counts, 1)
        ax.bar(centres, np.where(counts > 0, accuracy, 0), width=1 / bins, edgecolor="black", alpha=0.7,
               label="accuracy in bin")
        ax.plot([0, 1], [0, 1], color="grey", ls=":", label="perfect calibration")
        for x, n in zip(centres, counts, strict=True):
            if n:
                ax.text(x, 0.02, str(n), ha="center", fontsize=6, rotation=90)
        ece = expected_calibration_error(labels, probs, bins)
        ax.set_title(f"{sub}: ECE {ece:.3f}")
        ax.set_xlabel("confidence (top probability)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{title} ({len(labels)} images, {bins} bins; image counts at the bottom)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_misclassified(images: np.ndarray, labels: np.ndarray, probs: np.ndarray, features: np.ndarray,
                       head_kernel: np.ndarray, path: str | Path, count: int = 24) -> list[int]:
    """The most confidently wrong images, each beside the Grad-CAM of the class it was given.

    Returns the indices shown. ``features`` are the runtime's ``out_relu`` maps for ``images``.
    """
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != labels)
    shown = wrong[np.argsort(-probs[wrong, pred[wrong]])][:count].tolist()
    columns = 4
    rows = max(1, int(np.ceil(len(shown) / columns)))
    fig = _figure((4.2 * columns, 1.9 * rows + 0.6))
    axes = np.atleast_1d(fig.subplots(rows, columns * 2)).reshape(rows, columns * 2)
    for ax in axes.flat:
        ax.axis("off")
    for slot, i in enumerate(shown):
        r, c = divmod(slot, columns)
        cam = upsample(cam_from_features(features[i], head_kernel, int(pred[i])), images[i].shape[:2])
        axes[r, 2 * c].imshow(images[i])
        axes[r, 2 * c].set_title(f"true {CLASSES[labels[i]]}", fontsize=8)
        axes[r, 2 * c + 1].imshow(gradcam_overlay(images[i], cam))
        axes[r, 2 * c + 1].set_title(f"said {CLASSES[pred[i]]} {probs[i, pred[i]]:.0%}", fontsize=8)
    fig.suptitle(f"Most confidently misclassified test images ({len(shown)} of {len(wrong)} errors); "
                 "right: Grad-CAM of the predicted class")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return shown
