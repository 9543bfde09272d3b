"""Gradio app: probabilities, risk summary, Grad-CAM and LIME for a dermatoscopic image.

Run `python demo.py` (http://127.0.0.1:7860; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
override) or `gradio demo.py`. API endpoints for gradio_client: /classify and /explain.
This file wires components; the logic lives in ``model`` and ``explain``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from explain import explain_lime, gradcam_overlay, lime_overlay  # noqa: E402
from explain.gradcam import cam_from_features, upsample  # noqa: E402
from model import CLASSES, DESCRIPTIONS, ImageError, display_name, load_classifier, load_image  # noqa: E402
from model.labels import class_index  # noqa: E402
from model.risk import DISCLAIMER, assess  # noqa: E402

log = logging.getLogger("demo")
HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"
MAX_UPLOAD = "20mb"
TOP_CLASS = "top class"

clf = load_classifier()
CARD = clf.card()


def read_upload(payload) -> np.ndarray:
    """Decode an upload with the project's own loader (Gradio's preprocessing is off)."""
    if payload is None:
        raise gr.Error("Please upload an image first.", title="No image")
    if isinstance(payload, dict):
        url = payload.get("url") or ""
        source = payload.get("path")
        if source is None and url.startswith("data:"):
            try:
                source = base64.b64decode(url.split(",", 1)[1], validate=False)
            except (binascii.Error, IndexError) as exc:
                raise gr.Error("The image data could not be read.", title="Unreadable image") from exc
    else:
        source = payload
    if source is None:
        raise gr.Error("The upload contained no image.", title="No image")
    try:
        return load_image(source)
    except ImageError as exc:
        raise gr.Error(str(exc), title="Unreadable image") from exc


def probabilities(probs: np.ndarray) -> dict[str, float]:
    """gr.Label value: 'Melanoma (mel)' -> probability."""
    return {display_name(c): float(p) for c, p in zip(CLASSES, probs, strict=True)}


def classify(image) -> dict[str, float]:
    """Probabilities of the 7 classes (API: /classify)."""
    return probabilities(clf.predict([read_upload(image)])[0])


def _target(target: str | None, probs: np.ndarray) -> int:
    return class_index(None if target in (None, "", TOP_CLASS) else target, probs)


def gradcam_view(image, target: str = TOP_CLASS, opacity: float = 0.45):
    """Probabilities, Grad-CAM overlay and risk summary from one model call."""
    rgb = read_upload(image)
    probs, features = clf.predict_with_features([rgb])
    index = _target(target, probs[0])
    cam = upsample(cam_from_features(features[0], clf.head_kernel, index), rgb.shape[:2])
    return probabilities(probs[0]), gradcam_overlay(rgb, cam, alpha=opacity), assess(probs[0], CARD).summary()


def lime_view(image, target: str = TOP_CLASS, num_samples: int = 1000, progress=gr.Progress()):
    """LIME overlay: green regions support the class, red ones argue against it."""
    rgb = read_upload(image)
    progress(0.1, desc="LIME: perturbing superpixels")
    index = _target(target, clf.predict([rgb])[0])
    result = explain_lime(clf, rgb, label=index, num_samples=int(num_samples))
    return lime_overlay(rgb, result.weights, result.segments)


def explain(image, target: str = TOP_CLASS, num_samples: int = 1000, opacity: float = 0.45,
            progress=gr.Progress()):
    """Everything at once (API: /explain): label, Grad-CAM, LIME, summary, details."""
    rgb = read_upload(image)
    probs, features = clf.predict_with_features([rgb])
    index = _target(target, probs[0])
    cam = upsample(cam_from_features(features[0], clf.head_kernel, index), rgb.shape[:2])
    progress(0.2, desc="LIME")
    result = explain_lime(clf, rgb, label=index, num_samples=int(num_samples))
    risk = assess(probs[0], CARD)
    details = {
        "probabilities": {c: round(float(p), 6) for c, p in zip(CLASSES, probs[0], strict=True)},
        "prediction": CLASSES[int(probs[0].argmax())],
        "explained_class": CLASSES[index],
        "p_malignant": round(risk.p_malignant, 6),
        "malignant_threshold": round(risk.threshold, 6),
        "suspicious": risk.suspicious,
        "lime_r2": round(result.score, 4),
        "model_version": CARD.get("version", "unknown"),
        "disclaimer": DISCLAIMER,
    }
    return (
        probabilities(probs[0]),
        gradcam_overlay(rgb, cam, alpha=opacity),
        lime_overlay(rgb, result.weights, result.segments),
        risk.summary(),
        details,
    )


def load_examples() -> list[list[str]]:
    index = EXAMPLES_DIR / "examples.csv"
    if not index.is_file():
        return []
    with open(index) as fh:
        return [[str(EXAMPLES_DIR / row["file"])] for row in csv.DictReader(fh)]


CLASS_TABLE = "\n".join(f"- **{display_name(c)}**: {DESCRIPTIONS[c]}" for c in CLASSES)

with gr.Blocks(title="Skin lesion classifier with explanations", analytics_enabled=False,
               delete_cache=(600, 900)) as demo:
    gr.Markdown(
        "# Skin lesion classifier with Grad-CAM and LIME\n"
        "A MobileNetV2 trained on HAM10000 dermatoscopic images estimates the probability of 7 "
        "diagnoses and shows which regions drove its answer.\n\n"
        f"> ⚠️ **{DISCLAIMER}**"
    )
    with gr.Row():
        with gr.Column(scale=1):
            image = gr.Image(label="Dermatoscopic image", type="filepath", image_mode=None,
                             sources=["upload", "webcam", "clipboard"], height=320)
            with gr.Accordion("Settings", open=False):
                target = gr.Dropdown([TOP_CLASS, *CLASSES], value=TOP_CLASS, label="Class to explain")
                opacity = gr.Slider(0.1, 0.9, value=0.45, step=0.05, label="Grad-CAM opacity")
                samples = gr.Slider(200, 3000, value=1000, step=100, label="LIME samples")
            run = gr.Button("Explain again", variant="primary")
            examples = load_examples()
            if examples:
                gr.Examples(examples, inputs=image, label="Examples (HAM10000 test-split images)")
        with gr.Column(scale=1):
            label = gr.Label(num_top_classes=7, label="Class probabilities")
            summary = gr.Markdown(label="Risk summary")
            with gr.Row():
                gradcam = gr.Image(label="Grad-CAM: red = regions that raised the score", format="png",
                                   interactive=False)
                lime = gr.Image(label="LIME: green supports, red opposes", format="png", interactive=False)
            details = gr.JSON(label="Details", visible=False)
    with gr.Accordion("The seven classes", open=False):
        gr.Markdown(CLASS_TABLE)

    quick = image.change(gradcam_view, [image, target, opacity], [label, gradcam, summary],
                         preprocess=False, api_visibility="private", concurrency_limit=4,
                         show_progress="minimal")
    quick.then(lime_view, [image, target, samples], [lime], preprocess=False, api_visibility="private",
               concurrency_limit=1, concurrency_id="lime")
    run.click(explain, [image, target, samples, opacity], [label, gradcam, lime, summary, details],
              preprocess=False, api_name="explain", concurrency_limit=1, concurrency_id="lime")
    classify_api = gr.Button(visible=False)  # API-only: the UI gets its probabilities from `quick`
    classify_api.click(classify, [image], [label], preprocess=False, api_name="classify", concurrency_limit=4)


if __name__ == "__main__":
    demo.launch(max_file_size=MAX_UPLOAD, enable_monitoring=False, footer_links=["api"])
