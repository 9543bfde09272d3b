"""A one-page PNG report of an analysis: image, probabilities, both explanations, disclaimer."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from model import CLASSES, display_name
from model.risk import DISCLAIMER

from .scratch import new_file


def _plain(markdown: str) -> str:
    return re.sub(r"[*_`]", "", markdown)


def make_report(image: np.ndarray, probs: np.ndarray, gradcam: np.ndarray, lime: np.ndarray | None,
                summary: str, model_version: str) -> Path:
    """Write the report PNG and return its path."""
    fig = Figure(figsize=(11, 12.5))
    grid = fig.add_gridspec(3, 3, height_ratios=[1.1, 1.0, 0.9])
    for col, (img, title) in enumerate(((image, "Image"), (gradcam, "Grad-CAM (red: raised the score)"),
                                        (lime, "LIME (green supports, red opposes)"))):
        ax = fig.add_subplot(grid[0, col])
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
        if img is not None:
            ax.imshow(img)
        else:
            ax.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax.transAxes)
    bars = fig.add_subplot(grid[1, :])
    order = np.argsort(probs)
    bars.barh([display_name(CLASSES[i]) for i in order], probs[order], color="#d9822b")
    for y, i in enumerate(order):
        bars.text(probs[i] + 0.01, y, f"{probs[i]:.1%}", va="center", fontsize=9)
    bars.set_xlim(0, 1.1)
    bars.set_title("Class probabilities", fontsize=11)
    text = fig.add_subplot(grid[2, :])
    text.set_axis_off()
    body = "\n".join(textwrap.fill(p, 120) for p in _plain(summary).split("\n\n") if DISCLAIMER not in p)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text.text(0, 1, f"{body}\n\nModel: {model_version}. Made {stamp}.\n\n" + textwrap.fill(DISCLAIMER, 110),
              va="top", fontsize=9.5, transform=text.transAxes)
    fig.suptitle("Skin lesion classifier: analysis report (not a diagnosis)", fontsize=13, weight="bold")
    fig.tight_layout()
    path = new_file("report", ".png")
    fig.savefig(path, dpi=100)
    return path
