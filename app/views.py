"""What the page and the API return for an upload: probabilities, overlays, summary, details."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from functools import cache, cached_property

import gradio as gr
import numpy as np
from PIL import Image

import explain as explanations  # its heavy parts load on first use
from explain.gradcam import cam_map, served_method
from explain.similar import CONFIRMED_BY, cases_for, gallery_of
from model import CLASSES, display_name, load_classifier
from model.flags import Flags, flag
from model.labels import class_index
from model.preprocessing import has_transparency, prepare_batch
from model.risk import DISCLAIMER, assess, percent

from .card import map_trust
from .errors import user_error, user_facing
from .examples import EXAMPLES, true_diagnosis
from .uploads import read_upload, upload_source

TOP_CLASS = "top class"
DEFAULT_SAMPLES = 1000
DEFAULT_OPACITY = 0.45
# The class dropdown: people read names, the API keeps taking "top class" or a code
TARGET_CHOICES = [("Top class (the model's answer)", TOP_CLASS), *((display_name(c), c) for c in CLASSES)]


@cache
def classifier():
    """The shipped model, loaded once per process."""
    return load_classifier()


def warm_up() -> None:
    """Load what the first explanation needs (lime, scikit-image, matplotlib: ~2 s on 2 cores; the gallery).

    The app calls this once it is serving, so start-up is not slowed and the first upload is not either.
    """
    import model.metrics  # noqa: F401  (scikit-learn, for the batch tab: a start-up exception, app/__init__.py)

    explanations.load_all()
    classifier().predict([np.zeros((*classifier().input_size, 3), np.uint8)])  # XNNPACK set-up
    similar_items(np.zeros((1, 1, classifier().head_kernel.shape[0]), np.float32))  # reads the 10 MB gallery
    if classifier().has_gradients:  # the served Grad-CAM's gradient model: checked and set up once
        classifier().gradients(np.zeros((*classifier().input_size, 3), np.float32), 0)


def map_captions(gradcam_legend: str, lime_legend: str) -> tuple[str, str]:
    """Each map's caption: what its colours mean, then how far the card showed it can be trusted."""
    card = classifier().card()
    return tuple(f"{legend} {map_trust(card, name, served_method(classifier()))}".strip()
                 for legend, name in ((gradcam_legend, "Grad-CAM"), (lime_legend, "LIME")))


def model_version() -> str:
    return classifier().card().version


def probabilities(probs: np.ndarray) -> dict[str, float]:
    """gr.Label value: 'Melanoma (mel)' -> probability."""
    return {display_name(c): float(p) for c, p in zip(CLASSES, probs, strict=True)}


def as_png(array: np.ndarray, what: str, explained: str) -> Image.Image:
    """A PIL image whose PNG text chunks say what it shows.

    The request id makes every output's bytes unique: Gradio caches outputs under a hash of
    their bytes and rewrites that file in place, so identical outputs of concurrent requests
    would otherwise be rewritten while another request downloads them.
    """
    img = Image.fromarray(array)
    img.info.update({"Description": f"{what} for class {explained}", "Explains": explained,
                     "Model": model_version(), "Disclaimer": DISCLAIMER, "Request": uuid.uuid4().hex})
    return img


def target_index(target: str | None, probs: np.ndarray) -> int:
    try:
        return class_index(None if target in (None, "", TOP_CLASS) else target, probs)
    except ValueError as exc:
        raise user_error(str(exc), "Unknown class") from exc


def _samples(num_samples) -> int:
    try:
        value = int(num_samples)
    except (TypeError, ValueError) as exc:
        raise user_error("LIME samples must be a whole number.", "Bad setting") from exc
    if not 50 <= value <= 5000:
        raise user_error("LIME samples must be between 50 and 5000.", "Bad setting")
    return value


def opacity_value(opacity) -> float:
    try:
        value = float(opacity)
    except (TypeError, ValueError) as exc:
        raise user_error("Grad-CAM opacity must be a number between 0 and 1.", "Bad setting") from exc
    if not 0.0 <= value <= 1.0:
        raise user_error("Grad-CAM opacity must be between 0 and 1.", "Bad setting")
    return value


def run_model(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One model call: (network input, probabilities, features), each for a batch of this one image."""
    clf = classifier()
    inputs = prepare_batch([image], clf.input_size)
    return (inputs, *clf.run(inputs))


def flags_of(inputs: np.ndarray, probs: np.ndarray, features: np.ndarray) -> Flags:
    """The two flags of one image, from what ``run_model`` returned (the input feeds the detail and colour scores)."""
    clf = classifier()
    return flag(probs, features, clf.head_kernel, clf.card(), inputs)[0]


NOT_DERMOSCOPIC = ("⚠️ **This may not be a dermoscopic image, so no verdict is given.** The model only knows "
                   "dermoscopic images of skin lesions: for this picture its answer means little, flagged or not. "
                   "What works: a dermatoscope close-up of one skin lesion, centred and in focus, with skin around "
                   "it, and no text, frame or background.")
FILLED = ("⚠️ **The picture's transparent parts were filled with white.** The model never saw transparency, "
          "and the white can change its answer: upload the original photograph, without transparency.")
WITHHELD_CLASS = "Shown greyed, not as an answer: the class the model leaned to was {name}, {share}."


def summary_parts(probs: np.ndarray, flags: Flags, upload) -> tuple[str, str]:
    """(warnings, the rest): what must be read first, and the summary under the probabilities.

    A picture flagged as not dermoscopic gets no risk verdict (neither "Suspicious" nor a reassuring
    "Lower risk"): the model's answer for it means little either way, so only the class is named, as such.
    """
    source = upload_source(upload)
    warnings = [NOT_DERMOSCOPIC] if flags.not_dermoscopic else []
    if has_transparency(source):
        warnings.append(FILLED)
    top = int(probs.argmax())
    parts = []
    if flags.not_dermoscopic:
        parts.append(WITHHELD_CLASS.format(name=display_name(CLASSES[top]), share=percent(float(probs[top]))))
        parts.append(f"_{DISCLAIMER}_")
    else:
        if flags.uncertain:
            parts.append(f"⚠️ **Uncertain:** no class reaches {flag_threshold():.0%} (the most likely has "
                         f"{percent(float(probs[top]), flag_threshold())}); the answer is more likely wrong than "
                         "right.")
        parts.append(assess(probs, classifier().card()).summary())
    truth = true_diagnosis(source)
    if truth:
        parts.append(truth)
    return "\n\n".join(warnings), "\n\n".join(parts)


def summary_text(probs: np.ndarray, flags: Flags, upload) -> str:
    """The API's and the report's summary: warnings first, then the risk summary (withheld for a picture that
    may not be dermoscopic) and the truth of an example."""
    return "\n\n".join(part for part in summary_parts(probs, flags, upload) if part)


def flag_threshold() -> float:
    return classifier().card().uncertain_below


def pick_example(selected: gr.SelectData) -> str:
    """The image of the example thumbnail that was clicked."""
    return EXAMPLES[selected.index]["path"]


@user_facing
def classify(upload) -> dict[str, float]:
    """API /classify: the 7 probabilities."""
    return probabilities(analyse(upload).probs)


def explained_caption(index: int, probs: np.ndarray, target: str | None) -> str:
    """Which class both maps explain, said on the page (it is not visible in the maps themselves)."""
    top = int(probs.argmax())
    if target in (None, "", TOP_CLASS) or index == top:
        return f"Both maps explain **{display_name(CLASSES[index])}**, the model's top class."
    return (f"Both maps explain **{display_name(CLASSES[index])}**, chosen in Settings (the model's top class is "
            f"{display_name(CLASSES[top])}).")


SIMILAR_K = 6


def similar_cases(features: np.ndarray) -> list[dict]:
    """The similar confirmed cases (``explain.similar.cases_for``'s dicts, with ``confirmed_by`` in words), from the
    runtime's (h, w, C) features. A model exported without a gallery gives none: the rest of the answer does not
    depend on it."""
    try:
        gallery = gallery_of(classifier())
    except FileNotFoundError:
        return []
    return [{**case, "confirmed_by": CONFIRMED_BY.get(case["dx_type"], case["dx_type"])}
            for case in cases_for(gallery, features.mean(axis=(0, 1)), SIMILAR_K)]


def gallery_items(cases: list[dict]) -> list[tuple[np.ndarray, str]]:
    """The API's gallery items (thumbnail, caption): diagnosis, how it was confirmed, similarity and image id."""
    return [(case["thumbnail"], f"{display_name(case['dx'])}, {case['confirmed_by']}; "
                                f"similarity {case['similarity']:.2f} ({case['image_id']})") for case in cases]


def similar_items(features: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """The similar confirmed cases as gallery items, from the runtime's (h, w, C) features."""
    return gallery_items(similar_cases(features))


@dataclass(frozen=True)
class Analysis:
    """One upload's pass through the model, which every view formats: the image as read, the network input,
    probabilities, features, the class the maps explain and the settings, checked. What costs more than the
    pass is computed when a view first asks for it, once: the flags, the similar cases, the Grad-CAM map (a
    gradient pass; the views that show no Grad-CAM never make it)."""

    upload: object  # as the view got it: the summary reads its transparency and an example's truth from it
    target: str | None
    image: np.ndarray  # HxWx3 uint8, as read
    inputs: np.ndarray  # (1, H, W, 3): the scaled network input, a batch of one
    probs: np.ndarray  # (7,)
    features: np.ndarray  # (h, w, C) out_relu features
    index: int  # the class the maps explain: the target, or the top class
    opacity: float | None = None  # Grad-CAM's, checked; None: not given to ``analyse`` (``gradcam(opacity)``)
    num_samples: int | None = None  # LIME's, checked; None: not given to ``analyse``

    @property
    def explained(self) -> str:
        return CLASSES[self.index]

    @cached_property
    def flags(self) -> Flags:
        return flags_of(self.inputs, self.probs[None], self.features[None])

    @cached_property
    def cases(self) -> list[dict]:
        """The similar confirmed cases (``similar_cases``)."""
        return similar_cases(self.features)

    @cached_property
    def cam(self) -> np.ndarray:
        """The served Grad-CAM of the explained class at image size (a gradient pass, made once)."""
        return cam_map(classifier(), self.inputs[0], self.features, self.index, self.image.shape[:2])

    def gradcam(self, opacity: float | None = None) -> Image.Image:
        """The Grad-CAM overlay at ``opacity`` (default: the one ``analyse`` checked)."""
        alpha = self.opacity if opacity is None else opacity
        return as_png(explanations.gradcam_overlay(self.image, self.cam, alpha=alpha), "Grad-CAM", self.explained)

    def lime(self, num_samples: int | None = None):
        """LIME for the explained class (``explain.lime.LimeResult``): the slow part, never cached."""
        samples = self.num_samples if num_samples is None else num_samples
        return explanations.explain_lime(classifier(), self.image, label=self.index, num_samples=samples)

    def lime_png(self, result) -> Image.Image:
        return as_png(explanations.lime_overlay(self.image, result.weights, result.segments), "LIME", self.explained)

    def summary_parts(self) -> tuple[str, str]:
        return summary_parts(self.probs, self.flags, self.upload)

    def summary_text(self) -> str:
        return summary_text(self.probs, self.flags, self.upload)

    def caption(self) -> str:
        return explained_caption(self.index, self.probs, self.target)


NOT_GIVEN = object()  # a setting a view does not pass to ``analyse`` (None is a value, and refused)


def analyse(upload, target: str | None = TOP_CLASS, opacity=NOT_GIVEN, num_samples=NOT_GIVEN) -> Analysis:
    """The one pass every view starts with: read the upload, check the settings given (LIME's samples, then
    the opacity: in the order the API has always checked them), run the model once, pick the class to explain.

    Raises the user-facing errors of each step (an unreadable file, a bad setting, an unknown class)."""
    image = read_upload(upload)
    num_samples = None if num_samples is NOT_GIVEN else _samples(num_samples)
    opacity = None if opacity is NOT_GIVEN else opacity_value(opacity)
    inputs, probs, features = run_model(image)
    return Analysis(upload=upload, target=target, image=image, inputs=inputs, probs=probs[0], features=features[0],
                    index=target_index(target, probs[0]), opacity=opacity, num_samples=num_samples)


@user_facing
def similar(upload) -> list[tuple[np.ndarray, str]]:
    """API /similar: the six training images most like the upload, with diagnosis, confirmation and similarity."""
    return gallery_items(analyse(upload).cases)


@user_facing
def lime_image(upload, target: str = TOP_CLASS, num_samples: int = DEFAULT_SAMPLES, progress=gr.Progress()):
    """The slow part: LIME's overlay (green supports the class, red opposes it)."""
    analysis = analyse(upload, target, num_samples=num_samples)
    progress(0.05, desc=f"LIME: {analysis.num_samples} perturbed copies")
    return analysis.lime_png(analysis.lime())


@user_facing
def explain(upload, target: str = TOP_CLASS, num_samples: int = DEFAULT_SAMPLES,
            opacity: float = DEFAULT_OPACITY, progress=gr.Progress()):
    """API /explain: probabilities, Grad-CAM overlay, LIME overlay, summary, details, similar cases."""
    analysis = analyse(upload, target, opacity, num_samples)
    probs = analysis.probs
    progress(0.1, desc=f"LIME: {analysis.num_samples} perturbed copies")
    result = analysis.lime()
    risk = assess(probs, classifier().card())
    flags = analysis.flags
    details = {
        "probabilities": {c: round(float(p), 6) for c, p in zip(CLASSES, probs, strict=True)},
        "prediction": CLASSES[int(probs.argmax())],
        "explained_class": analysis.explained,
        "p_malignant": round(risk.p_malignant, 6),
        "malignant_threshold": round(risk.threshold, 6),
        "suspicious": risk.suspicious,
        "uncertain": flags.uncertain,
        "not_dermoscopic": flags.not_dermoscopic,
        "lime_r2": round(result.score, 4),
        "model_version": model_version(),
        "disclaimer": DISCLAIMER,
    }
    return (
        probabilities(probs),
        analysis.gradcam(),
        analysis.lime_png(result),
        analysis.summary_text(),
        details,
        gallery_items(analysis.cases),
    )


def explained_class(overlay) -> str | None:
    """The class an overlay made by ``as_png`` explains (its PNG says so), or None for any other picture."""
    source = upload_source(overlay)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            return img.info.get("Explains")
    except (OSError, ValueError):
        return None


@user_facing
def report(upload, target: str = TOP_CLASS, opacity: float = DEFAULT_OPACITY, lime_shown=None) -> str:
    """Path of a PNG report: the image, its probabilities, Grad-CAM and (if given) LIME, all of one class.

    The report names that class and the model version on its face. A LIME overlay of another class, or one
    that does not say its class, is refused rather than drawn beside the Grad-CAM: two maps of two classes
    side by side read as one explanation.
    """
    from .report import make_report  # matplotlib: a start-up exception (app/__init__.py)

    analysis = analyse(upload, target)  # the opacity is checked where the map is drawn, as it always was
    lime = None
    if lime_shown:
        lime_class = explained_class(lime_shown)
        if lime_class != analysis.explained:
            what = f"explains {display_name(lime_class)}" if lime_class in CLASSES else "does not say its class"
            raise user_error(f"The LIME overlay {what}, but the report explains {display_name(analysis.explained)}: "
                             "explain the image again with this class (or leave LIME out), so that both maps "
                             "explain one class.", "Maps of two classes")
        lime = read_upload(lime_shown)
    cam = np.asarray(analysis.gradcam(opacity_value(opacity)))
    return str(make_report(analysis.image, analysis.probs, cam, lime, analysis.summary_text(), model_version(),
                           analysis.explained))
