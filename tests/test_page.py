"""The Analyse tab's logic (app/page.py) without a browser: every result replaced together, no verdict for a
picture that may not be dermoscopic, and one class for every map of a report."""

from __future__ import annotations

import warnings

import gradio as gr
import numpy as np
import pytest
from PIL import Image, ImageDraw

from app import page, views


def _note(path) -> str:
    """A photographed handwritten note, as a person might upload by mistake: no lesion, no colour."""
    img = Image.new("RGB", (400, 300), (250, 250, 245))
    draw = ImageDraw.Draw(img)
    for i in range(8):
        draw.text((20, 20 + 32 * i), "Buy milk, eggs and bread; call the clinic at 3", fill=(20, 20, 60))
    img.save(path)
    return str(path)


def _value(update) -> object:
    return update.constructor_args.get("value") if isinstance(update, gr.components.Component) else update


def _is_cleared(results: page.PageResults) -> bool:
    return (_value(results.label) is None and results.gradcam is None and results.lime is None
            and results.summary == "" and results.explained == "" and results.similar == "" and results.gallery == []
            and _value(results.report) is None and results.report.constructor_args["visible"] is False
            and results.details is None and results.shown is None)


def test_removing_the_image_empties_every_result_without_an_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gr.Warning outside a server is a Python warning: none may come
        results = page.overview(None)
    assert _is_cleared(results) and results.notice == ""


def test_an_unreadable_file_empties_every_result_and_says_why(tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_text("definitely not a jpeg")
    with pytest.warns(UserWarning, match="holiday.jpg: not an image file"):  # the one toast
        results = page.overview(str(bad))
    assert _is_cleared(results)
    assert "holiday.jpg: not an image file" in results.notice


def test_a_lesion_gets_every_result_and_the_page_remembers_the_class_of_its_maps(examples):
    results = page.overview(str(examples[0]["path"]), "nv", 0.3)
    assert results.notice == "" and len(_value(results.label)) == 7
    assert results.label.constructor_args["elem_classes"] == []
    assert results.gradcam.info["Explains"] == "nv" and results.lime is None  # LIME follows
    assert "Suspicious" in results.summary and len(results.gallery) == views.SIMILAR_K
    assert results.shown == {"class": "nv", "opacity": 0.3}
    assert page.lime(str(examples[0]["path"]), results.shown, 100).info["Explains"] == "nv"
    assert page.lime(None, results.shown, 100) is None and page.lime(str(examples[0]["path"]), None, 100) is None


def test_no_verdict_for_a_picture_that_may_not_be_dermoscopic(tmp_path):
    note = _note(tmp_path / "note.png")
    results = page.overview(note)
    assert "no verdict is given" in results.notice and "What works: a dermatoscope close-up" in results.notice
    assert results.label.constructor_args["elem_classes"] == ["withheld"]  # greyed, still shown
    assert len(_value(results.label)) == 7
    for verdict in ("Suspicious", "Lower risk", "flagged all the same"):
        assert verdict not in results.summary
    assert "Shown greyed, not as an answer" in results.summary
    # the API's summary (and the report's) says the same, warning first
    inputs, probs, features = views.run_model(views.read_upload(note))
    text = views.summary_text(probs[0], views.flags_of(inputs, probs, features), note)
    assert text.startswith(views.NOT_DERMOSCOPIC) and "Suspicious" not in text and "Lower risk" not in text


def test_the_report_follows_the_maps_on_screen_not_a_class_chosen_since(examples, monkeypatch, tmp_path):
    made = {}

    def fake_report(image, probs, gradcam, lime, summary, version, explained):
        made.update(explained=explained, lime=lime)
        return "report.png"

    monkeypatch.setattr("app.report.make_report", fake_report)
    path = str(examples[0]["path"])
    shown = page.overview(path).shown  # maps of the top class (mel)
    lime = page.lime(path, shown, 100)
    saved = _save_png(lime, tmp_path / "lime-mel.png")  # the page hands back the PNG Gradio saved
    page.report_shown(path, shown, {"path": saved})  # the Settings now say nv; the page's state still says mel
    assert made["explained"] == "mel" and made["lime"] is not None
    with pytest.raises(gr.Error, match="LIME overlay explains Melanoma \\(mel\\), but the report explains "
                                       "Melanocytic nevus \\(nv\\)"):
        views.report(path, "nv", 0.45, {"path": saved})  # the API refuses two classes in one report
    with pytest.raises(gr.Error, match="Upload an image first"):
        page.report_shown(None, None, None)


def _save_png(img: Image.Image, path) -> str:
    """The overlay as Gradio writes it to its cache: a PNG keeping its text chunks."""
    from gradio.processing_utils import encode_pil_to_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_pil_to_bytes(img, "png"))
    return str(path)


def test_an_overlay_that_does_not_say_its_class_is_refused(examples, tmp_path):
    plain = tmp_path / "plain.png"
    Image.fromarray(np.zeros((150, 200, 3), np.uint8)).save(plain)
    with pytest.raises(gr.Error, match="does not say its class"):
        views.report(str(examples[0]["path"]), "top class", 0.45, {"path": str(plain)})


def test_a_picture_with_transparent_parts_says_they_were_filled_with_white(tmp_path, examples):
    from tests.hostile import _rgba

    see_through = tmp_path / "cut-out.png"
    see_through.write_bytes(_rgba())
    assert views.FILLED in page.overview(str(see_through)).notice
    assert views.FILLED not in page.overview(str(examples[0]["path"])).notice
    inputs, probs, features = views.run_model(views.read_upload(str(see_through)))
    assert views.FILLED in views.summary_text(probs[0], views.flags_of(inputs, probs, features), str(see_through))


def test_a_tiff_gets_a_png_preview_of_what_the_model_read(tmp_path, examples, monkeypatch):
    """Issue 31: a TIFF (supported) showed as a broken image in the upload box."""
    from app import scratch
    from model import load_image
    from tests.hostile import _tiff_pages

    monkeypatch.setattr(scratch, "SCRATCH_DIR", tmp_path / "files")
    tiff = tmp_path / "scan.tiff"
    tiff.write_bytes(_tiff_pages())
    preview = page.overview(str(tiff)).preview
    with Image.open(preview) as png:
        assert png.format == "PNG"
    np.testing.assert_array_equal(load_image(preview), load_image(tiff))  # the same pixels for every later step
    assert isinstance(page.overview(str(examples[0]["path"])).preview, type(gr.skip()))  # a JPEG shows as it is


def test_one_analysis_serves_every_view_and_only_the_views_showing_grad_cam_pay_its_gradient_pass(examples,
                                                                                                 monkeypatch):
    path = str(examples[0]["path"])
    analysis = views.analyse(path, "nv", 0.3)
    assert analysis.explained == "nv" and analysis.opacity == 0.3 and analysis.probs.shape == (7,)
    assert analysis.inputs.shape[0] == 1 and analysis.features.ndim == 3 and analysis.image.ndim == 3
    assert analysis.gradcam().info["Explains"] == "nv" and analysis.cam is analysis.cam  # drawn once
    with pytest.raises(AttributeError):
        analysis.index = 0  # frozen: every view reads the same pass
    for opacity, samples, refused in ((None, 100, "opacity must be a number"), (0.3, None, "samples must be a whole")):
        with pytest.raises(gr.Error, match=refused):  # a setting sent as None is refused, not taken as "not given"
            views.analyse(path, "nv", opacity, samples)

    def no_gradients(*args, **kwargs):
        raise AssertionError("a view that shows no Grad-CAM made its gradient pass")

    monkeypatch.setattr(views, "cam_map", no_gradients)
    assert len(views.classify(path)) == 7 and len(views.similar(path)) == views.SIMILAR_K
    assert page.after_explain(path, "nv", 0.3)[-1] == {"class": "nv", "opacity": 0.3}
