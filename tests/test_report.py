"""The PNG report: a fixed grid where no text is cut at the page's edge or runs into other text."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

LONG_SUMMARY = "\n\n".join([
    "⚠️ **This may not be a dermoscopic image.** The model only knows dermoscopic images of skin lesions; its "
    "answer for this picture means little.",
    "⚠️ **Uncertain:** no class reaches 50%; the answer is more likely wrong than right.",
    "**Suspicious: flagged for a closer look.** The malignant classes (melanoma, basal cell carcinoma, actinic "
    "keratosis/intraepithelial carcinoma) together get 31%, at or above the 17% at which this demo flags an image.",
    "Most likely class: Actinic keratosis / intraepithelial carcinoma (akiec), 40%: a sun-induced precancerous or "
    "early (in situ) squamous cell cancer of the skin surface.",
    "The threshold is set low to miss few malignant lesions, so many flagged lesions are benign; on held-out test "
    "lesions it caught 96% of malignant lesions and cleared 63% of benign ones.",
    "True diagnosis of this HAM10000 example: **Basal cell carcinoma (bcc)**, by histopathology.",
])


def _layout(lime):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    from app.report import report_figure

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)
    probs = np.array([0.4, 0.3, 0.1, 0.02, 0.08, 0.05, 0.05], np.float32)
    fig = report_figure(image, probs, image, lime, LONG_SUMMARY, "v13", "bcc")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return fig, renderer, {t.get_text(): t.get_window_extent(renderer) for t in texts}


@pytest.mark.parametrize("with_lime", [True, False])
def test_every_text_stays_inside_the_page_and_clear_of_other_text(with_lime):
    lime = np.zeros((150, 200, 3), np.uint8) if with_lime else None
    fig, renderer, boxes = _layout(lime)
    width, height = fig.bbox.width, fig.bbox.height
    for text, box in boxes.items():
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, f"cut: {text[:60]!r}"
    body = next(b for t, b in boxes.items() if "True diagnosis" in t)
    assert "carcinoma" in next(t for t in boxes if "True diagnosis" in t)  # not cut short
    titles = [b for t, b in boxes.items() if t.split("\n")[0] in ("Image", "Grad-CAM", "LIME")]
    assert len(titles) == 3
    face = [b for t, b in boxes.items() if t.startswith(("Skin lesion classifier", "Both maps explain"))]
    assert len(face) == 2
    for a, b in itertools.combinations([*face, *titles, body], 2):
        assert not a.overlaps(b), "texts collide"
    panels = [ax for ax in fig.axes if ax.get_title().split("\n")[0] in ("Image", "Grad-CAM", "LIME")]
    assert min(ax.get_window_extent(renderer).x0 for ax in panels) < 0.1 * width  # no empty left third
    for ax in fig.axes:
        assert not ax.get_window_extent(renderer).overlaps(body)
    if not with_lime:
        missing = next(b for t, b in boxes.items() if t.startswith("not computed"))
        lime_axes = next(ax for ax in panels if ax.get_title().startswith("LIME"))
        inside = lime_axes.get_window_extent(renderer)
        assert inside.x0 <= missing.x0 and missing.x1 <= inside.x1 and inside.y0 <= missing.y0 <= inside.y1


def test_report_png_is_a4_at_100_dpi(tmp_path, monkeypatch):
    from PIL import Image

    from app import report, scratch

    monkeypatch.setattr(scratch, "SCRATCH_DIR", tmp_path)
    image = np.zeros((150, 200, 3), np.uint8)
    path = report.make_report(image, np.full(7, 1 / 7, np.float32), image, None, LONG_SUMMARY, "v13", "mel")
    with Image.open(path) as png:
        assert png.size == (827, 1169)
        assert png.info["Explains"] == "mel" and png.info["Model"] == "v13"


def test_report_names_the_class_its_maps_explain_and_the_model_on_its_face():
    """A printed map shows neither its class nor its model: both are written under the title."""
    fig, _, boxes = _layout(None)
    face = next(t for t in boxes if t.startswith("Both maps explain"))
    assert "Basal cell carcinoma (bcc)" in face and "model v13" in face
    assert boxes[face].y0 > 0.9 * fig.bbox.height  # at the top, above the panels
