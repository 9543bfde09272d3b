"""The studies that measure an exported model on its own split and write a section of its card.

Each is declared once here: its subcommand, the module in this package and the function that
measure (imported by name only when that study runs: this table is part of the command line,
whose ``--help`` and JSON-only commands load no Keras), the card section it
writes, whether it scores a sample of ``--images`` per split, and how its result is printed.
``python -m training`` generates one subcommand per study from this table
(``python -m training STUDY EXPORT --data DIR [--seed S] [--images N]``).

To add a study: a module with ``measure_exported(export_dir, data, [images,] seed) -> section``
that writes ``card[key]`` (``training.card.record``; ``training.export.measure_in_place`` does the
opening and the writing) in this package, a ``render`` of that section in ``training/card.py``, and a
row here.
``Study.measure`` checks that the section it declares is the one the card holds afterwards.
"""

from __future__ import annotations

import ast
import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from model.card import read_json


def constant(module: str, name: str = "__doc__"):
    """A string or number a training module defines (``name``; its docstring by default), read from its
    source, not imported: ``--help`` shows it without loading the module's Keras."""
    path = Path(__file__).resolve().parent.parent.joinpath(*module.split("."))
    tree = ast.parse((path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text())
    if name == "__doc__":
        return ast.get_docstring(tree, clean=False)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AttributeError(f"training.{module} defines no {name}")


def _flags(ood: dict) -> Iterable[str]:
    yield (f"not dermoscopic: flags {ood['val_dermoscopic_flagged']:.1%} of validation, "
           f"{ood['test_dermoscopic_flagged']:.1%} of test, {ood['non_dermoscopic_flagged']:.1%} of "
           f"{ood['non_dermoscopic_images']} non-dermoscopic images; "
           f"missed: {', '.join(ood['non_dermoscopic_missed'])}")


def _robustness(measured: dict) -> Iterable[str]:
    for split, rows in measured.items():
        for row in rows:
            yield (f"{split:>5} {row['shift']:<34} balanced accuracy {row['balanced_accuracy']:.3f}, "
                   f"top class unchanged {row['top_class_unchanged']:.1%}")


def _intervals(metrics: dict) -> Iterable[str]:
    for split, ci in ((split, metrics[split]["ci95"]) for split in ("val", "test")):
        for name, (low, high) in ((k, v) for k, v in ci.items() if k != "method"):
            yield f"{split:>5} {name:<22} {low:.3f} - {high:.3f}"


def _side_by_side(measured: dict) -> Iterable[str]:
    """Rows of a study that scores several maps (or segmentations) with the same metrics on each split."""
    for split in ("val", "test"):
        for method, row in measured[split].items():
            if isinstance(row, dict) and "ci95" in row:
                metrics = [m for m in row if m != "ci95" and not m.startswith("minus")]
                yield f"{split:>5} {method:<17} " + "  ".join(f"{m} {row[m]:.3f}" for m in metrics)
    if "served" in measured:
        yield f"served: {measured['served']}"


def _gallery(built: dict) -> Iterable[str]:
    for kind, splits in built["measured"].items():
        yield f"{kind:>16}  " + "  ".join(f"{split} {m}: {v:.3f}" for split, r in splits.items() for m, v in r.items())
    yield f"chosen on validation: {built['embedding']}; {built['images']} images, {built['bytes'] / 1e6:.1f} MB"


def _sanity(measured: dict) -> Iterable[str]:
    maps = [m for m, row in measured.items() if isinstance(row, dict) and "verdict" in row]
    for m in maps:
        for variant, row in measured[m].items():
            if isinstance(row, dict) and "ci95" in row:
                low, high = row["ci95"]["spearman"]
                yield f"{m:<12} {variant:<16} rank correlation {row['spearman']:+.3f} ({low:+.3f} to {high:+.3f})  " \
                      f"SSIM {row['ssim']:.3f}"
    for m in maps:
        checks = measured[m]["verdict"].items()
        yield f"{m}: " + ", ".join(f"{k.replace('_', ' ')} {'passed' if v else 'not passed'}" for k, v in checks)


@dataclass(frozen=True)
class Study:
    name: str  # the subcommand
    module: str  # in this package (training.studies)
    function: str  # (export_dir, data, [images,] seed) -> the card section it wrote
    key: str  # the card section
    help: str
    report: Callable[[dict], Iterable[str]]
    sampled: bool = False  # scores ``--images`` per split (default: the module's IMAGES_PER_SPLIT), not all

    def loaded(self):
        return importlib.import_module(f".{self.module}", __package__)

    def default_images(self) -> int | None:
        return constant(f"studies.{self.module}", "IMAGES_PER_SPLIT") if self.sampled else None

    def measure(self, export: str, data: str, seed: int = 0, images: int | None = None) -> dict:
        """Run the study on an export; its section, as the card now holds it under ``key``."""
        action = getattr(self.loaded(), self.function)
        if not self.sampled:
            section = action(export, data, seed=seed)
        else:
            section = action(export, data, images if images is not None else self.default_images(), seed=seed)
        written = read_json(export).get(self.key)
        if json.dumps(written, sort_keys=True) != json.dumps(section, sort_keys=True):  # NaN-safe
            raise RuntimeError(f"study {self.name!r} declares section {self.key!r}, but that is not what it wrote")
        return written


STUDIES: dict[str, Study] = {s.name: s for s in (
    Study("flags", "flags", "recalibrate", "not_dermoscopic",
          "recalibrate the not-dermoscopic flag of an exported model (the model is untouched)", _flags),
    Study("robustness", "robustness", "measure_exported", "robustness",
          "how vignettes and colour casts change an exported model's answers", _robustness),
    Study("intervals", "intervals", "measure_exported", "metrics",
          "95% lesion-bootstrap intervals of an exported model's figures (each split's ci95)", _intervals),
    Study("explanations", "explanations", "measure_exported", "explanations",
          "Grad-CAM and LIME scored against lesion boxes and by deletion / insertion", _side_by_side, sampled=True),
    Study("cams", "cams", "measure_exported", "cam_methods",
          "the Grad-CAM candidates of explain.gradcam scored and timed side by side (writes the gradient model)",
          _side_by_side, sampled=True),
    Study("segmentations", "segmentations", "measure_exported", "lime_segmentations",
          "LIME's superpixel algorithms and scales scored and timed side by side", _side_by_side,
          sampled=True),
    Study("sanity", "sanity", "measure_exported", "sanity_checks",
          "the served Grad-CAM and LIME after randomising the model block by block and refitting its head to "
          "shuffled labels (Adebayo et al. 2018)", _sanity, sampled=True),
    Study("gallery", "gallery", "build", "similar_cases",
          "the similar-cases gallery from the training split, its embedding chosen on validation", _gallery),
)}
