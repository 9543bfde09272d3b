"""Validation on three sets at once: HAM10000's own split and two sets from other sources.

HAM10000 validation alone rewarded what fits HAM10000 and rejected what generalises (colour
constancy, colour casts), and the team measured the model dropping on other clinics' images. So
every choice is also scored on images HAM10000 never saw, read as a user hands them over (the
files, through the runtime's ``predict``):

- HAM10000 validation: the card's lesion-grouped split, read from whichever copy ``--data`` names.
- ISIC 2017 validation + test parts (mel, nv, bkl; other sources, many from a US centre). Its
  train part may be trained on (``--extra``), these two parts never are.
- ISIC 2018 Task 3 validation (all 7 classes, the official test set's distribution; 193 images).

Balanced accuracy is the mean recall over the classes a set has, from the model's 7-way top class
(an ISIC 2017 melanoma called bcc is wrong, as the app would show it). The external sets have no
lesion ids, so their intervals resample images. The rule that uses these figures to choose a
model is in docs/selection-rule.md and training/selection/.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model.card import read_json
from model.labels import CLASSES
from model.metrics import (
    RESAMPLES,
    balanced_accuracy,
    bootstrap_intervals,
    expected_calibration_error,
    macro_auc,
    melanoma_recall,
    roc_auc,
)
from model.preprocessing import load_image
from model.runtime import load_classifier

from .card import record
from .config import ENSEMBLE_JOIN
from .data import read_split
from .selection.rule import RULE, RULE_FIGURE, generalisation, rule_classes, rule_statistic

ISIC2017_DIR = "isic2017"
ISIC2018_DIR = "isic2018_val"
ISIC2018_TEST_A_DIR = "isic2018_test_a"  # half of the official test set: the target distribution
ISIC2018_TEST_A_TRUTH = "ISIC2018_Task3_Test_GroundTruth_A.csv"
ISIC2017_EXTERNAL = ("validation", "test")  # never trained on (data.ISIC2017_TRAINABLE is the other part)


@dataclass(frozen=True)
class EvalSet:
    """One validation set: files, true labels (CLASSES indices) and the groups a bootstrap resamples."""

    name: str
    title: str
    paths: tuple[str, ...]
    labels: np.ndarray
    groups: np.ndarray
    grouped_by: str  # "lesions" or "images"


def ham_validation(data_dir: str | Path, seed: int = 0) -> EvalSet:
    part = read_split(data_dir, seed=seed).query("split == 'val'")
    return EvalSet("ham_val", "HAM10000 validation split", tuple(part.path), part.label.to_numpy(),
                   part.lesion_id.to_numpy(), "lesions")


def isic2017_external(data_dir: str | Path) -> EvalSet:
    data_dir = Path(data_dir)
    table = pd.read_csv(data_dir / "labels.csv").query("isic2017_split in @ISIC2017_EXTERNAL")
    paths = tuple(str(data_dir / "images" / f"{i}.jpg") for i in table.image_id)
    return EvalSet("isic2017", "ISIC 2017 validation + test (mel, nv, bkl)", paths,
                   table.dx.map(CLASSES.index).to_numpy(), table.image_id.to_numpy(), "images")


def _isic2018(data_dir: Path, truth: str) -> tuple[pd.DataFrame, tuple[str, ...], np.ndarray]:
    """The challenge's one-hot ground truth: (table, image paths, CLASSES indices)."""
    table = pd.read_csv(data_dir / truth)
    columns = [c.upper() for c in CLASSES]
    onehot = table[columns].to_numpy()
    if not np.allclose(onehot.sum(1), 1):
        raise ValueError(f"{data_dir}: ground truth rows must be one-hot over {columns}")
    return table, tuple(str(data_dir / "images" / f"{i}.jpg") for i in table.image), onehot.argmax(1)


def isic2018_validation(data_dir: str | Path) -> EvalSet:
    table, paths, labels = _isic2018(Path(data_dir), "ISIC2018_Task3_Validation_GroundTruth.csv")
    return EvalSet("isic2018_val", "ISIC 2018 Task 3 validation", paths, labels, table.image.to_numpy(), "images")


def isic2018_test_a(data_dir: str | Path) -> EvalSet:
    """Half A of the official ISIC 2018 test set, resampled by lesion (the set has ``lesion_id``)."""
    table, paths, labels = _isic2018(Path(data_dir), ISIC2018_TEST_A_TRUTH)
    return EvalSet("isic2018_test_a", "ISIC 2018 Task 3 test, half A", paths, labels, table.lesion_id.to_numpy(),
                   "lesions")


def validation_sets(ham_dir: str | Path, seed: int = 0, external_root: str | Path | None = None) -> list[EvalSet]:
    """HAM10000 validation, then each external set found in ``external_root`` (default: beside ``ham_dir``)."""
    root = Path(external_root) if external_root else Path(ham_dir).resolve().parent
    sets = [ham_validation(ham_dir, seed)]
    if (root / ISIC2017_DIR / "labels.csv").is_file():
        sets.append(isic2017_external(root / ISIC2017_DIR))
    if (root / ISIC2018_DIR).is_dir():
        sets.append(isic2018_validation(root / ISIC2018_DIR))
    if (root / ISIC2018_TEST_A_DIR / ISIC2018_TEST_A_TRUTH).is_file():
        sets.append(isic2018_test_a(root / ISIC2018_TEST_A_DIR))
    return sets


def predict_files(predict: Callable[[list[np.ndarray]], np.ndarray], paths: tuple[str, ...], chunk: int = 32,
                  workers: int = 2) -> np.ndarray:
    """Probabilities for image files, decoded with the serving loader (full resolution, EXIF) in chunks."""
    out = []
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(paths), chunk):
            out.append(predict(list(pool.map(load_image, paths[start:start + chunk]))))
    return np.concatenate(out).astype(np.float32)


def _melanoma_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    return roc_auc(labels == CLASSES.index("mel"), probs[:, CLASSES.index("mel")])


STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "balanced_accuracy": balanced_accuracy,
    "macro_auc": macro_auc,
    "melanoma_recall": melanoma_recall,
    "melanoma_auc": _melanoma_auc,
    "ece": expected_calibration_error,
}


def set_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """The set's figures (STATISTICS) and the recall of each class it has."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figures = {name: statistic(labels, probs) for name, statistic in STATISTICS.items()}
    recalls = {CLASSES[k]: float((probs[labels == k].argmax(1) == k).mean()) for k in np.unique(labels)}
    return {**figures, "recall": recalls}


def score(predict: Callable[[list[np.ndarray]], np.ndarray], sets: list[EvalSet],
          resamples: int = RESAMPLES) -> tuple[dict, dict]:
    """(card section, probabilities by set): every set's figures with intervals, and G, the mean over the
    sets of the rule's balanced accuracy."""
    section, probs = {}, {}
    for s in sets:
        probs[s.name] = predict_files(predict, s.paths)
        counts = {CLASSES[k]: int(n) for k, n in zip(*np.unique(s.labels, return_counts=True), strict=True)}
        statistics = {**STATISTICS, RULE_FIGURE: rule_statistic(s.labels)}
        section[s.name] = {
            "title": s.title, "images": len(s.paths), "classes": counts,
            **set_metrics(s.labels, probs[s.name]),
            RULE_FIGURE: statistics[RULE_FIGURE](s.labels, probs[s.name]),
            "rule_classes": [CLASSES[k] for k in rule_classes(s.labels)],
            "ci95": {"method": f"95% percentile bootstrap, {resamples:,} resamples of the set's {s.grouped_by}",
                     **bootstrap_intervals(s.labels, probs[s.name], s.groups, statistics, resamples)},
        }
    return {"sets": section, "G": generalisation(section), "rule": RULE}, probs


def measure_exported(export_dir: str | Path, data: str | Path, seed: int = 0,
                     external_root: str | Path | None = None) -> dict:
    """Score an exported model on every validation set into its card, in place (section ``external_validation``)."""
    section, _ = score(load_classifier(export_dir).predict, validation_sets(data, seed, external_root))
    record(export_dir, {"external_validation": section})
    return section


Predict = Callable[[list[np.ndarray]], np.ndarray]


def ensemble_members(name: str | Path) -> list[str]:
    """The export folders ``a+b`` names (one for a single model)."""
    return [m for m in str(name).split(ENSEMBLE_JOIN) if m]


def trains_on_isic2017(name: str | Path) -> bool:
    """Whether any member of ``name`` trained on ISIC 2017's train part (``--extra``), read from its card."""
    return any(read_json(m).get("training", {}).get("config", {}).get("extra") for m in ensemble_members(name))


def ensemble_predict(predicts: list[Predict]) -> Predict:
    """One predict that averages the members' probabilities (a single member is returned as it is)."""
    if len(predicts) == 1:
        return predicts[0]
    return lambda images: np.mean([predict(images) for predict in predicts], axis=0)


