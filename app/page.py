"""The Analyse tab as one state: every result replaced together, one class for every map.

The API's functions (``views``) answer one call each. The page chains several (the fast answer, then
LIME, then perhaps a report) while a person changes the image or the settings in between, so:
a new image, a cleared one or an unreadable one replaces every result at once (nothing of the last
image stays on screen), and the page remembers which class and opacity its maps were drawn for
(``shown``), so that LIME and the report follow the maps on screen, not the settings as they are now.
"""

from __future__ import annotations

import base64
import io
from html import escape
from typing import NamedTuple

import gradio as gr
import numpy as np
from PIL import Image

from model import display_name

from . import views
from .errors import said_on_page, user_error, user_facing
from .scratch import new_file
from .uploads import upload_source


class PageResults(NamedTuple):
    """Everything the page shows for one image, in the order ``demo.py`` wires its components."""

    notice: str  # read first: the picture may not be dermoscopic, or could not be read
    label: gr.Label  # the probabilities, greyed when no verdict is given
    gradcam: object
    lime: object
    summary: str
    explained: str
    similar: str  # the similar confirmed cases as the page shows them (``similar_html``)
    gallery: list  # the same cases as the API's gallery (hidden on the page)
    report: gr.File  # hidden until a report of this image is made
    details: dict | None
    shown: dict | None  # {"class": code, "opacity": float} of the maps on screen; None: no maps
    preview: object  # for the upload box: a PNG of a file browsers cannot show (TIFF); else gr.skip()


def cleared(notice: str = "") -> PageResults:
    """No results at all: after the image is removed, or when it could not be read."""
    return PageResults(notice, gr.Label(value=None, elem_classes=[]), None, None, "", "", "", [],
                       gr.File(value=None, visible=False), None, None, gr.skip())


def _data_uri(thumbnail: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(thumbnail).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def similar_html(cases: list[dict]) -> str:
    """The similar confirmed cases as cards: each thumbnail with its diagnosis, how it was confirmed and its
    similarity written in full under it (a gallery cut its captions and showed the rest only after a click)."""
    if not cases:
        return ""
    cards = "".join(
        f'<figure class="case"><img src="{_data_uri(case["thumbnail"])}" alt="{escape(display_name(case["dx"]))}">'
        f'<figcaption><b>{escape(display_name(case["dx"]))}</b><br>confirmed by {escape(case["confirmed_by"])}<br>'
        f'similarity {case["similarity"]:.2f}<br><small>{escape(case["image_id"])}</small></figcaption></figure>'
        for case in cases)
    return (f'<p class="cases-title">Similar confirmed cases: the {len(cases)} training images the model finds '
            f'closest</p><div class="cases">{cards}</div>')


def _label(probs, withheld: bool) -> gr.Label:
    """The probabilities (``None``: keep those shown); "withheld" greys them (CSS in demo.py), so that the class
    does not read as a verdict."""
    classes = ["withheld"] if withheld else []
    if probs is None:
        return gr.Label(elem_classes=classes)
    return gr.Label(value=views.probabilities(probs), elem_classes=classes)


NOT_SHOWN_BY_BROWSERS = {"TIFF"}  # formats the loader reads and a browser's <img> does not


def _preview(upload, image: np.ndarray):
    """What the model read, as a PNG for the upload box, when the browser cannot show the file itself (a TIFF
    showed as a broken image); the pixels are ``load_image``'s, so every later step reads the same image."""
    source = upload_source(upload)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            if img.format not in NOT_SHOWN_BY_BROWSERS:
                return gr.skip()
    except (OSError, ValueError):
        return gr.skip()
    path = new_file("preview", ".png")
    Image.fromarray(image).save(path)
    return str(path)


@user_facing
def _overview(upload, target: str, opacity: float) -> PageResults:
    analysis = views.analyse(upload, target, opacity)
    notice, summary = analysis.summary_parts()
    cases = analysis.cases
    return PageResults(
        notice, _label(analysis.probs, analysis.flags.not_dermoscopic), analysis.gradcam(), None, summary,
        analysis.caption(), similar_html(cases), views.gallery_items(cases), gr.File(value=None, visible=False),
        None, {"class": analysis.explained, "opacity": analysis.opacity}, _preview(upload, analysis.image))


def overview(upload, target: str = views.TOP_CLASS, opacity: float = views.DEFAULT_OPACITY) -> PageResults:
    """The page's answer to a new image: probabilities, Grad-CAM, summary, similar cases (LIME follows).

    Removing the image is not an error: every result is emptied. A file that cannot be read empties them too
    and says why, once, in a toast and above the results; it does not mark the emptied results as failed,
    which would leave bare "Error" badges on them.
    """
    if upload is None:
        return cleared()
    try:
        return _overview(upload, target, opacity)
    except gr.Error as exc:
        return cleared(said_on_page(exc))


def clear_if_gone(upload) -> PageResults:
    """Empty every result once the upload box is empty, whatever emptied it: a file over the size limit is
    refused by the browser, which then empties the box without an ``input`` event."""
    if upload is None:
        return cleared()
    return PageResults(*(gr.skip() for _ in PageResults._fields))


@user_facing
def lime(upload, shown: dict | None, num_samples: int = views.DEFAULT_SAMPLES, progress=gr.Progress()):
    """LIME for the class the page's Grad-CAM explains; nothing when the page has no maps (no or a bad image)."""
    if upload is None or not shown:
        return None
    return views.lime_image(upload, shown["class"], num_samples, progress)


@user_facing
def after_explain(upload, target: str = views.TOP_CLASS, opacity: float = views.DEFAULT_OPACITY):
    """After "Explain with these settings": which class the maps now explain, the notice, the label's look, the
    summary without the notice (the API's /explain, which drew the maps, keeps both in its summary), the similar
    cases as the page shows them and the page's state."""
    analysis = views.analyse(upload, target)  # no map is drawn here: the opacity is only remembered, checked
    notice, summary = analysis.summary_parts()
    return (analysis.caption(), notice, _label(None, analysis.flags.not_dermoscopic), summary,
            similar_html(analysis.cases), {"class": analysis.explained, "opacity": views.opacity_value(opacity)})


def report_shown(upload, shown: dict | None, lime_shown=None) -> str:
    """The report of what the page shows: its maps' class and opacity, not the settings changed since."""
    if upload is None or not shown:
        raise user_error("Upload an image first: the report shows its analysis.", "No image")
    return views.report(upload, shown["class"], shown["opacity"], lime_shown)
