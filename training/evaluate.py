"""Training-run figures; the metrics themselves live in ``model.metrics`` (the app uses them too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.metrics import (  # noqa: F401 - re-exported for training code and tests
    at_threshold,
    classification_metrics,
    macro_auc,
    operating_point,
    plot_confusion_matrix,
)


def plot_history(history: list[dict], path: str | Path) -> None:
    """Training loss and validation metrics per epoch, phases marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
