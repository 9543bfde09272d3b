"""Gradio app: probabilities, risk summary, Grad-CAM and LIME for a dermatoscopic image.

Run `python demo.py` (it prints the address it serves: http://127.0.0.1:7860 unless
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say otherwise) or `gradio demo.py` (reloads on edits).
API endpoints for gradio_client: /classify, /explain, /similar, /batch and /report (README: their inputs
and outputs). This file only lays out and wires components; the logic lives in ``app``,
``explain`` and ``model``.
"""

from __future__ import annotations

import os
import threading

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from app.scratch import isolate, remove_private_dir  # noqa: E402

isolate()  # before Gradio is imported: its cache of uploads and outputs goes into the app's private folder

import gradio as gr  # noqa: E402

from app import batch, card, page, views  # noqa: E402
from app.cache_writes import whole_writes  # noqa: E402
from app.examples import EXAMPLES  # noqa: E402
from app.examples import labels as example_labels  # noqa: E402
from model import CLASSES, DESCRIPTIONS, ModelFileError, display_name  # noqa: E402
from model.risk import DISCLAIMER  # noqa: E402
from model.runtime import SHIPPED_DIR  # noqa: E402

whole_writes()  # identical answers to concurrent requests share a cached image file: it must never be half-written

MAX_UPLOAD = "20mb"
# The disclaimer stays in view: a bar fixed to the bottom of the window (sticky did not hold
# inside Gradio's containers), with room left for it under the page's last line (the footer's
# "Use via API" link), and a short version on a phone, where the full one took 4 lines.
CSS = """
#disclaimer { position: fixed; bottom: 0; left: 0; right: 0; z-index: 50; margin: 0; padding: 4px 12px;
              background: var(--background-fill-primary); border-top: 1px solid var(--border-color-primary); }
#disclaimer p { margin: 0; font-size: 0.9em; }
#disclaimer .short { display: none; }
@media (max-width: 600px) { #disclaimer .long { display: none; } #disclaimer .short { display: inline; } }
.gradio-container { padding-bottom: 3.5em !important; }
#probabilities.withheld { opacity: 0.45; filter: grayscale(1); }
#similar .cases-title { font-weight: 600; margin: 0 0 6px; }
#similar .cases { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 10px 12px; }
@media (max-width: 600px) { #similar .cases { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
#similar .case { margin: 0; }
#similar .case img { width: 120px; max-width: 100%; height: auto; aspect-ratio: 4 / 3; display: block;
                    border-radius: 4px; }  /* the gallery keeps 80x60 thumbnails: at most 1.5x */
#similar figcaption { font-size: 0.85em; line-height: 1.35; margin-top: 4px; }
#model-card table, #full-card table { display: block; overflow-x: auto; }
#model-card :is(td, th), #full-card :is(td, th), #batch-table th, #batch-table th * {
    word-break: keep-all !important; overflow-wrap: normal !important; hyphens: none; }
#batch-table th, #batch-table th * { white-space: nowrap !important; }
#batch-table :is(td, th), #batch-table :is(td, th) * { font-size: 12px !important; }  /* all columns in view */
#batch-table :is(td, th) { padding: 4px !important; }
#batch-table :is(.cell-wrap, .header-content) { padding: 0 !important; gap: 0 !important; }
#batch-table td .cell-wrap { padding-left: 4px !important; }
#batch-table .cell-menu-button { display: none !important; }  /* sorting a 15-column table took its width */
#model-card td:not(:first-child), #full-card td:not(:first-child) { white-space: nowrap; }
#batch-plot { max-width: 640px; }
"""
# On a narrow screen the results are stacked under the inputs: bring them into view once ready.
SCROLL_TO_RESULTS = ("(image) => { if (image && window.innerWidth < 800) "
                     "document.querySelector('#probabilities')?.scrollIntoView({behavior: 'smooth'}); }")

try:
    views.classifier()  # load (and verify) the model now: fail at start-up, not on the first request
except ModelFileError as exc:
    raise SystemExit(f"Cannot start the demo: {exc}") from None

CARD_MD = SHIPPED_DIR / "MODEL_CARD.md"
LEGEND_GRADCAM = ("Grad-CAM: the warmer (red) a region, the more it raised the score of the explained class; "
                  "read it as where the model looked, not proof of why.")
LEGEND_LIME = ("LIME: outlined green regions support the explained class, red ones argue against it "
               "(5 strongest each).")
CAPTION_GRADCAM, CAPTION_LIME = views.map_captions(LEGEND_GRADCAM, LEGEND_LIME)  # with the card's checks
LEGEND_SIMILAR = ("What the model thinks the lesion resembles, not a diagnosis: HAM10000 training images "
                  "(CC BY-NC 4.0, Tschandl et al. 2018) nearest in the model's features.")
SHORT_DISCLAIMER = "Not a medical device: no diagnosis. See a dermatologist about any lesion that worries you."
SETTINGS_NOTE = "Changes here apply when you click **Explain with these settings**."

with gr.Blocks(title="Skin lesion classifier with explanations", analytics_enabled=False,
               delete_cache=(60, 600)) as demo:
    gr.Markdown(
        "# Skin lesion classifier with Grad-CAM and LIME\n"
        "A MobileNetV2 trained on HAM10000 (and ISIC 2017) dermatoscopic images estimates the probability of 7 "
        "diagnoses and shows which regions drove its answer."
    )
    gr.Markdown(f'<span class="long">⚠️ <b>{DISCLAIMER}</b></span><span class="short">⚠️ <b>{SHORT_DISCLAIMER}</b>'
                '</span>', elem_id="disclaimer")
    with gr.Tab("Analyse"):
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                image = gr.Image(label="Dermatoscopic image", type="filepath", image_mode=None,
                                 sources=["upload", "webcam", "clipboard"], height=320, elem_id="upload")
                # thumbnails with their captions (gr.Examples shows either images or labels, not both)
                examples = gr.Gallery([(row["path"], text) for row, text in zip(EXAMPLES, example_labels(),
                                                                               strict=True)],
                                      label="Examples: click one (HAM10000 test split; CC BY-NC 4.0, "
                                            "Tschandl et al. 2018)",
                                      columns=4, rows=2, height=340, object_fit="cover", allow_preview=False,
                                      interactive=False, elem_id="examples", visible=bool(EXAMPLES))
                with gr.Accordion("Settings", open=False):
                    gr.Markdown(SETTINGS_NOTE, elem_id="settings-note")
                    target = gr.Dropdown(views.TARGET_CHOICES, value=views.TOP_CLASS, label="Class to explain")
                    opacity = gr.Slider(0.1, 0.9, value=views.DEFAULT_OPACITY, step=0.05, label="Grad-CAM opacity")
                    samples = gr.Slider(200, 3000, value=views.DEFAULT_SAMPLES, step=100,
                                        label="LIME samples (more: steadier, slower)", elem_id="lime-samples")
                with gr.Row():
                    run = gr.Button("Explain with these settings", variant="primary")
                    make_report = gr.Button("Make report")
                report_file = gr.File(label="Report (PNG)", interactive=False, height=80, visible=False,
                                      elem_id="report-file")
            with gr.Column(scale=1, min_width=320):
                notice = gr.Markdown(elem_id="notice")
                label = gr.Label(num_top_classes=7, label="Class probabilities", elem_id="probabilities")
                summary = gr.Markdown(label="Risk summary", elem_id="summary")
                explained = gr.Markdown(label="Class the maps explain", elem_id="explained")
                with gr.Row():
                    with gr.Column(min_width=160):
                        gradcam = gr.Image(label="Grad-CAM", format="png", interactive=False, elem_id="gradcam")
                        gr.Markdown(CAPTION_GRADCAM, elem_id="gradcam-caption")
                    with gr.Column(min_width=160):
                        lime = gr.Image(label="LIME", format="png", interactive=False, elem_id="lime")
                        gr.Markdown(CAPTION_LIME, elem_id="lime-caption")
                similar_cases = gr.HTML(elem_id="similar")  # cards: every caption in full, on a phone too
                # the API's /explain and /similar give the cases as a gallery: hidden on the page
                similar = gr.Gallery(label="Similar confirmed cases: the training images the model finds closest "
                                           "(diagnosis, how it was confirmed, similarity)", visible=False,
                                     interactive=False, elem_id="similar-gallery")
                gr.Markdown(LEGEND_SIMILAR)
                details = gr.JSON(label="Details", visible=False)
                shown = gr.State(None)  # the class and opacity of the maps on screen (app/page.py)
        with gr.Accordion("The seven classes", open=False):
            gr.Markdown("\n".join(f"- **{display_name(c)}**: {DESCRIPTIONS[c]}" for c in CLASSES))

    with gr.Tab("Batch testing"):
        gr.Markdown("Upload several images or a zip of images. Optionally add a CSV of true labels in the "
                    "HAM10000 metadata layout (`image_id`, `dx`; matched to file names without suffix) to get "
                    "accuracy, balanced accuracy, per-class recall and a confusion matrix.")
        with gr.Row():
            batch_files = gr.File(label="Images or zip", file_count="multiple", elem_id="batch-files")
            batch_labels = gr.File(label="Labels CSV (optional)", file_types=[".csv"], elem_id="batch-labels")
        batch_run = gr.Button("Classify all", variant="primary")
        batch_summary = gr.Markdown(label="Batch summary", elem_id="batch-summary")
        batch_table = gr.Dataframe(value={"headers": batch.table_headers(False), "data": []},
                                   label="Predictions (probabilities rounded; the CSV has 6 decimals)",
                                   interactive=False, wrap=True, elem_id="batch-table")
        batch_plot = gr.Plot(label="Confusion matrix", show_label=False, elem_id="batch-plot")  # titled inside
        batch_csv = gr.File(label="Predictions CSV", interactive=False, elem_id="batch-csv")

    with gr.Tab("Model card"):
        gr.Markdown(card.reader_markdown(views.classifier().card()), elem_id="model-card")
        for path, caption in card.figures(SHIPPED_DIR):  # the caption above, not over the figure's own title
            gr.Markdown(f"**{caption}**", elem_classes="card-caption")
            gr.Image(str(path), label=caption, show_label=False, interactive=False, elem_classes="card-figure")
        if CARD_MD.is_file():
            with gr.Accordion("The full model card (for whoever trains the next model)", open=False):
                gr.Markdown(card.full_markdown(CARD_MD.read_text()), elem_id="full-card")

    # The page: probabilities, Grad-CAM and what the maps explain first (one model call), then LIME.
    # Every result is replaced together, so nothing of the last image stays (app/page.py). On `input` (an
    # upload, a photo, a paste, the X) and an example's click, not on `change`: Gradio fires `change` twice for
    # an image that replaces another, which ran everything twice and said a bad file's error twice.
    page_results = [notice, label, gradcam, lime, summary, explained, similar_cases, similar, report_file, details,
                    shown, image]

    def analyse(trigger):
        quick = trigger(page.overview, [image, target, opacity], page_results, preprocess=False,
                        api_visibility="private", concurrency_limit=4, show_progress="minimal")
        quick.then(None, [image], None, js=SCROLL_TO_RESULTS)
        return quick.then(page.lime, [image, shown, samples], [lime], preprocess=False, api_visibility="private",
                          concurrency_limit=1, concurrency_id="lime")

    picked = examples.select(views.pick_example, None, [image], api_visibility="private")
    new_image = (image.input, picked.success)
    lime_steps = [analyse(trigger) for trigger in new_image]
    explained_again = run.click(views.explain, [image, target, samples, opacity],
                                [label, gradcam, lime, summary, details, similar], preprocess=False,
                                api_name="explain",
                                concurrency_limit=1, concurrency_id="lime")
    explained_again.success(page.after_explain, [image, target, opacity],
                            [explained, notice, label, summary, similar_cases, shown], preprocess=False,
                            api_visibility="private")
    for trigger in new_image:  # a new image stops maps still being drawn of the last one, which would land on it
        trigger(None, None, None, cancels=[*lime_steps, explained_again], api_visibility="private")
    image.change(page.clear_if_gone, [image], page_results, preprocess=False, api_visibility="private",
                 show_progress="hidden")
    reported = make_report.click(page.report_shown, [image, shown, lime], [report_file], preprocess=False,
                                 api_visibility="private", concurrency_limit=2)
    reported.success(lambda: gr.File(visible=True), None, [report_file], api_visibility="private")
    report_api = gr.Button(visible=False)  # API-only: the page's report follows its maps (`shown`), not the settings
    report_api.click(views.report, [image, target, opacity, lime], [report_file], preprocess=False,
                     api_name="report", concurrency_limit=2)
    batch_outputs = [batch_table, batch_summary, batch_plot, batch_csv]
    batch_run.click(batch.run_batch_page, [batch_files, batch_labels], batch_outputs, preprocess=False,
                    api_visibility="private", concurrency_limit=1, concurrency_id="batch")
    batch_api = gr.Button(visible=False)  # API-only: /batch fails with the message, the page shows it instead
    batch_api.click(batch.run_batch, [batch_files, batch_labels], batch_outputs, preprocess=False, api_name="batch",
                    concurrency_limit=1, concurrency_id="batch")
    classify_api = gr.Button(visible=False)  # API-only: the page gets its probabilities from `quick`
    classify_api.click(views.classify, [image], [label], preprocess=False, api_name="classify",
                       concurrency_limit=4)
    similar_api = gr.Button(visible=False)  # API-only: the page gets its cases from `quick`
    similar_api.click(views.similar, [image], [similar], preprocess=False, api_name="similar", concurrency_limit=4)


if __name__ == "__main__" and gr.NO_RELOAD:  # `gradio demo.py` re-runs this file on edits: launch once
    served = demo  # reload mode rebinds `demo` to each new version; block on the server that runs
    served.launch(max_file_size=MAX_UPLOAD, enable_monitoring=False, footer_links=["api"], css=CSS,
                  prevent_thread_lock=True)
    # serving already: load what explanations need before the first upload, beside the main thread, which
    # waits in block_thread, where Ctrl+C and SIGTERM always land (an import it ran could swallow them)
    threading.Thread(target=views.warm_up, name="warm-up", daemon=True).start()
    served.block_thread()
    # the server has closed: what was derived from uploads goes now, whatever the interpreter's exit then
    # waits for (it joins worker threads before atexit runs)
    remove_private_dir()
