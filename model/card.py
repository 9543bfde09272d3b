"""The model card as serving and the app read it: typed, plain Python (no TensorFlow), defaults in one place.

The JSON card beside a model file is the contract between training and serving, and this module is
the only code that opens the file: ``read_json`` / ``write_json`` / ``update_sections`` for training's
studies (which add their sections), ``ModelCard.read`` for serving. ``ModelCard.from_json``
reads it once, older cards' names included, into typed sections: what serving decides with (the
malignant operating point, the uncertainty threshold, the not-dermoscopic thresholds), what it checks
(``files``) and what the app shows (classes, input, preprocessing, temperature, data, metrics, similar
cases, the served Grad-CAM and LIME segmentation). Every field has a default, so an older card, or none,
loads. The research sections stay as the studies wrote them: a ``ModelCard`` is also a read-only mapping
over the JSON (``card.section("sanity_checks")``, ``card["training"]["command"]``), so a reader of the
JSON and a reader of the card see the same keys. ``FIGURES`` names the figures a card ships beside it.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CARD_FILE = "model_card.json"  # beside the model files in an export folder
DEFAULT_UNCERTAIN_BELOW = 0.5  # calibrated top probability: below it the answer is more likely wrong
DEFAULT_MALIGNANT_THRESHOLD = 0.5  # a card without an operating point (a model trained before it had one)


@dataclass(frozen=True)
class OperatingPoint:
    """Where P(malignant) flags an image, chosen on validation; with what it did on each split.

    A card without the section (a model trained before it had one) gets the 0.5 threshold and no rates:
    ``measured`` says whether the card measured it."""

    threshold: float = DEFAULT_MALIGNANT_THRESHOLD
    test_sensitivity: float | None = None
    test_specificity: float | None = None
    val_sensitivity: float | None = None
    val_specificity: float | None = None
    chosen_on: str | None = None

    @classmethod
    def from_section(cls, section: Mapping) -> OperatingPoint:
        return cls(threshold=float(section.get("threshold", DEFAULT_MALIGNANT_THRESHOLD)),
                   test_sensitivity=_number(section.get("test_sensitivity")),
                   test_specificity=_number(section.get("test_specificity")),
                   val_sensitivity=_number(section.get("val_sensitivity")),
                   val_specificity=_number(section.get("val_specificity")),
                   chosen_on=section.get("chosen_on"))

    @property
    def measured(self) -> bool:
        return self.test_sensitivity is not None and self.test_specificity is not None


@dataclass(frozen=True)
class NotDermoscopicThresholds:
    """The "this may not be a dermoscopic image" flag: an image is flagged when any score is below its
    threshold (None: that score is not used). Energy and structure read the features; detail and colour
    the network input (model/flags.py). With the rates the card measured at these thresholds (None: not
    measured)."""

    energy: float | None = None
    structure: float | None = None
    detail: float | None = None
    colour: float | None = None
    test_dermoscopic_flagged: float | None = None  # false positives on the test split
    non_dermoscopic_flagged: float | None = None  # true positives on the non-dermoscopic pictures
    non_dermoscopic_images: int | None = None
    chosen_on: str | None = None

    @classmethod
    def from_section(cls, section: Mapping) -> NotDermoscopicThresholds:
        """From the card's JSON section (``threshold`` is the energy score's, as every card has it)."""
        images = section.get("non_dermoscopic_images")
        return cls(energy=_number(section.get("threshold")), structure=_number(section.get("structure_threshold")),
                   detail=_number(section.get("detail_threshold")), colour=_number(section.get("colour_threshold")),
                   test_dermoscopic_flagged=_number(section.get("test_dermoscopic_flagged")),
                   non_dermoscopic_flagged=_number(section.get("non_dermoscopic_flagged")),
                   non_dermoscopic_images=None if images is None else int(images),
                   chosen_on=section.get("chosen_on"))

    def by_score(self) -> dict[str, float]:
        return {name: value for name, value in (("energy", self.energy), ("structure", self.structure),
                                                 ("detail", self.detail), ("colour", self.colour))
                if value is not None}


@dataclass(frozen=True)
class UncertaintyRates:
    """What the "uncertain" flag did on one split."""

    uncertain_share: float
    accuracy_confident: float
    accuracy_uncertain: float


@dataclass(frozen=True)
class Uncertainty:
    """The "uncertain" flag: below ``threshold`` (calibrated top probability) the answer is more likely wrong."""

    threshold: float = DEFAULT_UNCERTAIN_BELOW
    rule: str | None = None
    val: UncertaintyRates | None = None
    test: UncertaintyRates | None = None

    @classmethod
    def from_section(cls, section: Mapping) -> Uncertainty:
        def rates(split):
            row = section.get(split)
            names = UncertaintyRates.__dataclass_fields__
            if not isinstance(row, Mapping) or any(row.get(k) is None for k in names):
                return None  # a card measured before the flag's rates
            return UncertaintyRates(**{k: float(row[k]) for k in names})

        return cls(threshold=float(section.get("threshold", DEFAULT_UNCERTAIN_BELOW)), rule=section.get("rule"),
                   val=rates("val"), test=rates("test"))


@dataclass(frozen=True)
class ClassMetrics:
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    support: int | None = None
    auc: float | None = None


@dataclass(frozen=True)
class SplitMetrics:
    """One split's figures; ``ci95``: name -> (low, high), empty for a card measured before intervals."""

    accuracy: float | None = None
    balanced_accuracy: float | None = None
    macro_auc: float | None = None
    malignant_auc: float | None = None
    ece: float | None = None
    ece_uncalibrated: float | None = None
    n: int | None = None
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)
    ci95: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_section(cls, section: Mapping) -> SplitMetrics:
        numbers = {k: _number(section.get(k)) for k in ("accuracy", "balanced_accuracy", "macro_auc",
                                                         "malignant_auc", "ece", "ece_uncalibrated")}
        per_class = {c: ClassMetrics(**{k: row.get(k) for k in ClassMetrics.__dataclass_fields__})
                     for c, row in section.get("per_class", {}).items()}
        ci95 = {k: (float(v[0]), float(v[1])) for k, v in section.get("ci95", {}).items()
                if isinstance(v, (list, tuple)) and len(v) == 2}
        n = section.get("n")
        return cls(**numbers, n=None if n is None else int(n), per_class=per_class, ci95=ci95)

    def interval(self, name: str) -> tuple[float, float] | None:
        return self.ci95.get(name)


@dataclass(frozen=True)
class InputSize:
    height: int
    width: int


@dataclass(frozen=True)
class FileRecord:
    """A shipped file's checksum and size, as the card records it (the runtime checks the file against it)."""

    sha256: str | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class DataSplits:
    """The data the model was trained and measured on: images and lesions per split."""

    dataset: str | None = None
    images: dict[str, int] = field(default_factory=dict)  # "train", "val", "test"
    lesions: dict[str, int] = field(default_factory=dict)
    split: str | None = None
    image_size: str | None = None


@dataclass(frozen=True)
class SimilarCasesSection:
    """The similar-cases gallery exported with the model (``file`` beside it) and how it was chosen."""

    file: str
    sha256: str | None = None
    images: int | None = None
    k: int | None = None
    embedding: str | None = None
    source: str | None = None  # the JSON's "from"


@dataclass(frozen=True)
class ServedMeasurements:
    """A study of explanation candidates (``cam_methods``, ``lime_segmentations``): the one served, and the
    measured splits as the study wrote them (research figures, read at the edge: ``test["images"]``, ...)."""

    served: str | None = None
    val: Mapping = field(default_factory=dict)
    test: Mapping = field(default_factory=dict)

    @classmethod
    def from_section(cls, section: Mapping | None) -> ServedMeasurements | None:
        if not isinstance(section, Mapping):
            return None
        return cls(served=section.get("served"), val=section.get("val") or {}, test=section.get("test") or {})


@dataclass(frozen=True)
class Figure:
    """A figure shipped beside the card: its file in the export folder, the app's caption, the link's words in
    MODEL_CARD.md (None: the study that draws it links it in its own section) and, for the two MODEL_CARD.md
    shows inline, the image's alt text. ``from_run``: drawn by the training run (``finish_run``) and copied
    into the export with the card; otherwise drawn by a study straight into the export."""

    file: str
    caption: str
    link: str | None = None
    alt: str | None = None
    from_run: bool = True


FIGURES = (  # the one list: the app's model-card tab and MODEL_CARD.md both show these, in this order
    Figure("confusion_test.png", "Confusion matrix on the test split: counts and row-normalised (recall on the "
           "diagonal)", link="Confusion matrix, counts and row-normalised", alt="confusion matrix"),
    Figure("roc_test.png", "ROC curves per class, and malignant against benign",
           link="ROC curves per class and malignant vs benign"),
    Figure("reliability_test.png", "Reliability diagram: predicted confidence against accuracy, before and after "
           "temperature scaling", link="Reliability diagram before and after temperature scaling"),
    Figure("misclassified_test.png", "The test images the model got wrong most confidently, with the Grad-CAM of "
           "the class it chose", link="Most confidently misclassified images with the Grad-CAM of the predicted class"),
    Figure("explanations_test.png", "Deletion and insertion curves: how fast the class's probability falls (rises) "
           "as the map's top pixels are blurred away (put back)", from_run=False),  # training/explanations.py
    Figure("training_curves.png", "Training curves on the validation split", link="Training curves (validation)",
           alt="training curves"),
)
RUN_FIGURES = tuple(f.file for f in FIGURES if f.from_run)  # what a training run draws and its export ships


# the card's JSON section of the not-dermoscopic flag; cards written before it had one name used "ood"
NOT_DERMOSCOPIC_KEY = "not_dermoscopic"
NOT_DERMOSCOPIC_KEYS = (NOT_DERMOSCOPIC_KEY, "ood")


def not_dermoscopic_section(data: Mapping) -> dict:
    """The card JSON's not-dermoscopic section (its thresholds and measured rates), under either name."""
    return next((dict(data[k]) for k in NOT_DERMOSCOPIC_KEYS if k in data), {})


@dataclass(frozen=True, eq=False)  # compared as a mapping, like the JSON
class ModelCard(Mapping[str, Any]):
    """The card typed where serving and the app read it; every field has a default, so an old card (or none)
    loads. The research sections stay in the JSON: ``card.section(name)`` (or ``card[name]``) reads them."""

    name: str = "model"
    version: str = "unknown"
    classes: tuple[str, ...] = ()
    input_size: InputSize | None = None
    preprocessing: str | None = None
    temperature: float | None = None
    operating_point: OperatingPoint = field(default_factory=OperatingPoint)
    uncertainty: Uncertainty = field(default_factory=Uncertainty)
    not_dermoscopic: NotDermoscopicThresholds = field(default_factory=NotDermoscopicThresholds)
    files: dict[str, FileRecord] = field(default_factory=dict)
    data: DataSplits = field(default_factory=DataSplits)
    metrics: dict[str, SplitMetrics] = field(default_factory=dict)  # "val", "test"
    similar_cases: SimilarCasesSection | None = None
    cam_methods: ServedMeasurements | None = None
    segmentations: ServedMeasurements | None = None  # the JSON's "lime_segmentations"
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping | None) -> ModelCard:
        """The card from its JSON (a dict, or None for a model without a card: every default)."""
        if isinstance(data, ModelCard):
            return data
        data = dict(data or {})
        size = data.get("input_size")
        temperature = data.get("temperature")
        splits = data.get("data") or {}
        gallery = data.get("similar_cases")
        return cls(
            name=str(data.get("name", "model")),
            version=str(data.get("version", "unknown")),
            classes=tuple(data.get("classes", ())),
            input_size=InputSize(int(size["height"]), int(size["width"])) if isinstance(size, Mapping) else None,
            preprocessing=data.get("preprocessing"),
            temperature=None if temperature is None else float(temperature),
            operating_point=OperatingPoint.from_section(data.get("malignant_operating_point", {})),
            uncertainty=Uncertainty.from_section(data.get("uncertainty", {})),
            not_dermoscopic=NotDermoscopicThresholds.from_section(not_dermoscopic_section(data)),
            files={name: FileRecord(sha256=entry.get("sha256"), bytes=entry.get("bytes"))
                   for name, entry in data.get("files", {}).items() if isinstance(entry, Mapping)},
            data=DataSplits(dataset=splits.get("dataset"), images=dict(splits.get("images", {})),
                            lesions=dict(splits.get("lesions", {})), split=splits.get("split"),
                            image_size=splits.get("image_size")),
            metrics={split: SplitMetrics.from_section(m) for split, m in data.get("metrics", {}).items()
                     if isinstance(m, dict)},
            similar_cases=SimilarCasesSection(
                file=gallery["file"], sha256=gallery.get("sha256"), images=gallery.get("images"), k=gallery.get("k"),
                embedding=gallery.get("embedding"), source=gallery.get("from"),
            ) if isinstance(gallery, Mapping) and "file" in gallery else None,
            cam_methods=ServedMeasurements.from_section(data.get("cam_methods")),
            segmentations=ServedMeasurements.from_section(data.get("lime_segmentations")),
            raw=data,
        )

    @property
    def uncertain_below(self) -> float:
        """The calibrated top probability below which an answer is flagged "uncertain"."""
        return self.uncertainty.threshold

    def section(self, key: str) -> dict:
        """A research section as the study wrote it (``{}`` when the card has none): read at the edge."""
        value = self.raw.get(key)
        return value if isinstance(value, dict) else {}

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ModelCard:
        """The card at ``path`` (the file or its export folder), or an empty card (every default) when there
        is none."""
        return cls.from_json(read_json(path, missing_ok=True) or None)

    def to_json(self) -> dict:
        """A copy of the JSON, to edit and write back (training's studies do)."""
        return copy.deepcopy(self.raw)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


def _number(value) -> float | None:
    return None if value is None else float(value)


def card_file(where: str | os.PathLike[str]) -> Path:
    """The card file of an export folder, or ``where`` itself when it names the file."""
    where = Path(where)
    return where / CARD_FILE if where.is_dir() or not where.suffix else where


def read_json(where: str | os.PathLike[str], missing_ok: bool = False) -> dict:
    """The card's JSON as a dict (an export folder or the file); ``{}`` for a missing one if ``missing_ok``."""
    path = card_file(where)
    if missing_ok and not path.is_file():
        return {}
    return json.loads(path.read_text())


def write_json(where: str | os.PathLike[str], data: Mapping) -> Path:
    """Write the whole card, replacing the file in one step so a reader never sees half of it."""
    path = card_file(where)
    text = json.dumps(data, indent=2) + "\n"
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".card-", suffix=".json", delete=False) as fh:
        fh.write(text)
    os.replace(fh.name, path)
    os.chmod(path, 0o644)
    return path


def update_sections(where: str | os.PathLike[str], sections: Mapping[str, Any],
                    remove: Iterable[str] = ()) -> dict:
    """Put ``sections`` into the card (each replacing the section of that name), drop the sections named
    in ``remove`` (older names of the same section), keep everything else; returns the new card."""
    card = {k: v for k, v in read_json(where).items() if k not in set(remove) - set(sections)}
    card.update(sections)
    write_json(where, card)
    return card
