"""A one-page PNG report of an analysis: image, probabilities, both explanations, summary, disclaimer.

A report is what a student prints, so it is laid out on a fixed A4 grid (no tight_layout, which
moved the panels as their labels changed) and its text is wrapped to the width it is drawn in.
"""

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

PAGE = (8.27, 11.69)  # A4 portrait, inches
DPI = 100
MARGIN = 0.06  # of the page width, each side
BODY_FONT = 9.0
PANELS = (("Image", None), ("Grad-CAM", "red: raised the score"), ("LIME", "green supports, red opposes"))


def _plain(markdown: str) -> str:
    return re.sub(r"[*_`]", "", markdown)


def _wrap(text: str, width_inches: float, font: float = BODY_FONT) -> str:
    chars = int(width_inches * 72 / (0.58 * font))
    return "\n".join(textwrap.fill(p, chars) for p in text.split("\n"))


def make_report(image: np.ndarray, probs: np.ndarray, gradcam: np.ndarray, lime: np.ndarray | None,
                summary: str, model_version: str, explained: str) -> Path:
    """Write the report PNG and return its path (``explained``: the class code both maps explain)."""
    fig = report_figure(image, probs, gradcam, lime, summary, model_version, explained)
    path = new_file("report", ".png")
    # PNG text, as the overlays have: what a program reads where a person reads the face
    fig.savefig(path, dpi=DPI, metadata={"Explains": explained, "Model": model_version, "Disclaimer": DISCLAIMER})
    return path


def report_figure(image: np.ndarray, probs: np.ndarray, gradcam: np.ndarray, lime: np.ndarray | None,
                  summary: str, model_version: str, explained: str) -> Figure:
    """The report as a matplotlib Figure (for the PNG, and for tests that measure its layout).

    The class the maps explain and the model version are on its face, under the title: a printed map
    does not show which class it explains, nor which model drew it.
    """
    fig = Figure(figsize=PAGE)
    width = 1 - 2 * MARGIN
    fig.text(0.5, 0.975, "Skin lesion classifier: analysis report (not a diagnosis)", ha="center", va="top",
             fontsize=13, weight="bold")
    fig.text(0.5, 0.948, f"Both maps explain {display_name(explained)}; model {model_version}", ha="center",
             va="top", fontsize=10.5)

    # row 1: three panels of equal width, titles above, all inside [MARGIN, 1 - MARGIN]
    gap = 0.03
    panel = (width - 2 * gap) / 3
    row_height = panel * PAGE[0] * 0.75 / PAGE[1]  # 4:3 like HAM10000; other shapes are letterboxed in it
    for col, ((title, sub), img) in enumerate(zip(PANELS, (image, gradcam, lime), strict=True)):
        left = MARGIN + col * (panel + gap)
        ax = fig.add_axes((left, 0.885 - row_height, panel, row_height))
        ax.set_xticks([])
        ax.set_yticks([])
        if img is not None:
            ax.imshow(img)
            for spine in ax.spines.values():
                spine.set_visible(False)
        else:  # an empty frame under its own title, with the reason inside it
            for spine in ax.spines.values():
                spine.set_color("#bbbbbb")
            ax.text(0.5, 0.5, "not computed\n(explain the image first)", ha="center", va="center",
                    fontsize=9, color="#666666", transform=ax.transAxes)
        ax.set_title(title + (f"\n{sub}" if sub else "\n"), fontsize=9.5, pad=4)

    # row 2: probabilities; the class names get the left third, wrapped to fit it
    bars = fig.add_axes((MARGIN + 0.30, 0.50, width - 0.30 - 0.06, 0.20))
    order = np.argsort(probs)
    names = [textwrap.fill(display_name(CLASSES[i]), 30) for i in order]
    bars.barh(range(len(order)), probs[order], color="#d9822b")
    bars.set_yticks(range(len(order)), names, fontsize=8)
    for y, i in enumerate(order):
        bars.text(probs[i] + 0.01, y, f"{probs[i]:.1%}", va="center", fontsize=8)
    bars.set_xlim(0, 1.15)
    bars.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"], fontsize=8)
    bars.spines[["top", "right"]].set_visible(False)
    bars.set_title("Class probabilities", fontsize=10.5, pad=6)

    # row 3: the summary, the stamp and the disclaimer, wrapped to the page's text width
    paragraphs = [p for p in _plain(summary).split("\n\n") if DISCLAIMER not in p]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n\n".join([*paragraphs, f"Model: {model_version}. Made {stamp}.", DISCLAIMER])
    text_width = width * PAGE[0]
    font = BODY_FONT
    lines = _wrap(body, text_width, font)
    while lines.count("\n") + 1 > 0.40 * PAGE[1] * 72 / (1.35 * font) and font > 6:  # shrink to fit, not cut
        font -= 0.5
        lines = _wrap(body, text_width, font)
    fig.text(MARGIN, 0.445, lines, ha="left", va="top", fontsize=font, linespacing=1.35)
    return fig
