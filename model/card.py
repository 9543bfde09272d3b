"""The model card as serving reads it: typed, plain Python (no TensorFlow), defaults in one place.

The JSON card beside a model file is the contract between training and serving, and this module is
the only code that opens the file: ``read_json`` / ``write_json`` / ``update_sections`` for training's
studies (which add their sections), ``ModelCard.read`` for serving. ``ModelCard.from_json``
reads it once, older cards' names included, into the fields serving decides with (the malignant
operating point, the uncertainty threshold, the not-dermoscopic thresholds, the headline metrics).
Everything else stays readable as it is in the JSON: a ``ModelCard`` is a read-only mapping over it
(``card["training"]["command"]``, ``card.get("version")``), so a reader of the JSON and a reader of
the card see the same keys.
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
    """Where P(malignant) flags an image, chosen on validation; with what it did on the test split."""

    threshold: float = DEFAULT_MALIGNANT_THRESHOLD
    test_sensitivity: float | None = None
    test_specificity: float | None = None


@dataclass(frozen=True)
class NotDermoscopicThresholds:
    """The "this may not be a dermoscopic image" flag: an image is flagged when any score is below its
    threshold (None: that score is not used). Energy and structure read the features; detail and colour
    the network input (model/flags.py)."""

    energy: float | None = None
    structure: float | None = None
    detail: float | None = None
    colour: float | None = None

    @classmethod
    def from_section(cls, section: Mapping) -> NotDermoscopicThresholds:
        """From the card's JSON section (``threshold`` is the energy score's, as every card has it)."""
        return cls(energy=_number(section.get("threshold")), structure=_number(section.get("structure_threshold")),
                   detail=_number(section.get("detail_threshold")), colour=_number(section.get("colour_threshold")))

    def by_score(self) -> dict[str, float]:
        return {name: value for name, value in (("energy", self.energy), ("structure", self.structure),
                                                 ("detail", self.detail), ("colour", self.colour))
                if value is not None}


@dataclass(frozen=True)
class SplitMetrics:
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    macro_auc: float | None = None


# the card's JSON section of the not-dermoscopic flag; cards written before it had one name used "ood"
NOT_DERMOSCOPIC_KEY = "not_dermoscopic"
NOT_DERMOSCOPIC_KEYS = (NOT_DERMOSCOPIC_KEY, "ood")


def not_dermoscopic_section(data: Mapping) -> dict:
    """The card JSON's not-dermoscopic section (its thresholds and measured rates), under either name."""
    return next((dict(data[k]) for k in NOT_DERMOSCOPIC_KEYS if k in data), {})


@dataclass(frozen=True, eq=False)  # compared as a mapping, like the JSON
class ModelCard(Mapping[str, Any]):
    version: str = "unknown"
    operating_point: OperatingPoint = field(default_factory=OperatingPoint)
    uncertain_below: float = DEFAULT_UNCERTAIN_BELOW
    not_dermoscopic: NotDermoscopicThresholds = field(default_factory=NotDermoscopicThresholds)
    metrics: dict[str, SplitMetrics] = field(default_factory=dict)  # "val", "test"
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping | None) -> ModelCard:
        """The card from its JSON (a dict, or None for a model without a card: every default)."""
        if isinstance(data, ModelCard):
            return data
        data = dict(data or {})
        point = data.get("malignant_operating_point", {})
        flag = not_dermoscopic_section(data)
        return cls(
            version=str(data.get("version", "unknown")),
            operating_point=OperatingPoint(
                threshold=float(point.get("threshold", DEFAULT_MALIGNANT_THRESHOLD)),
                test_sensitivity=point.get("test_sensitivity"), test_specificity=point.get("test_specificity"),
            ),
            uncertain_below=float(data.get("uncertainty", {}).get("threshold", DEFAULT_UNCERTAIN_BELOW)),
            not_dermoscopic=NotDermoscopicThresholds.from_section(flag),
            metrics={split: SplitMetrics(**{k: m.get(k) for k in ("accuracy", "balanced_accuracy", "macro_auc")})
                     for split, m in data.get("metrics", {}).items() if isinstance(m, dict)},
            raw=data,
        )

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
