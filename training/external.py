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
model is in docs/selection-rule.md.
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
from model.metrics import bootstrap_intervals, expected_calibration_error, macro_auc, melanoma_recall, roc_auc
from model.preprocessing import load_image

from .config import ENSEMBLE_JOIN
from .data import read_split
from .intervals import difference

ISIC2017_DIR = "isic2017"
ISIC2018_DIR = "isic2018_val"
ISIC2018_TEST_A_DIR = "isic2018_test_a"  # half of the official test set: the target distribution
ISIC2018_TEST_A_TRUTH = "ISIC2018_Task3_Test_GroundTruth_A.csv"
ISIC2017_EXTERNAL = ("validation", "test")  # never trained on (data.ISIC2017_TRAINABLE is the other part)
RULE = "docs/selection-rule.md"
RULE_MIN_GAIN = 0.01  # G must rise by this much over the shipped model
RULE_MAX_ECE = 0.05
RULE_MIN_CLASS_IMAGES = 5  # the rule's balanced accuracy counts only classes a set has this many images of
PAIRED = ("balanced_accuracy", "macro_auc", "melanoma_recall", "melanoma_auc")  # candidate minus shipped
RULE_FIGURE = "rule_balanced_accuracy"
RULE_MIN_EDITED_GAIN = 0.05  # or E, balanced accuracy under the editing shifts, rises this much (G not falling)


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


def _balanced_accuracy(labels: np.ndarray, probs: np.ndarray, classes: np.ndarray | None = None) -> float:
    """Mean recall over ``classes`` (default: those present in ``labels``); predictions of other classes
    count as wrong."""
    pred = probs.argmax(1)
    classes = np.unique(labels) if classes is None else classes
    return float(np.mean([(pred[labels == k] == k).mean() for k in classes if (labels == k).any()]))


def rule_classes(labels: np.ndarray) -> np.ndarray:
    """The classes the rule's balanced accuracy counts: those with at least RULE_MIN_CLASS_IMAGES images.

    One image of a class moves a balanced accuracy by a share of 1 / (number of classes): on ISIC 2018
    validation's single dermatofibroma, 0.143. A set with no class that large counts them all.
    """
    classes, counts = np.unique(labels, return_counts=True)
    kept = classes[counts >= RULE_MIN_CLASS_IMAGES]
    return kept if len(kept) else classes


def rule_statistic(labels: np.ndarray) -> Callable[[np.ndarray, np.ndarray], float]:
    """Balanced accuracy over the rule's classes of the whole set, kept fixed across bootstrap resamples."""
    classes = rule_classes(labels)
    return lambda y, probs: _balanced_accuracy(y, probs, classes)


def _melanoma_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    return roc_auc(labels == CLASSES.index("mel"), probs[:, CLASSES.index("mel")])


STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "balanced_accuracy": _balanced_accuracy,
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


def score(predict: Callable[[list[np.ndarray]], np.ndarray], sets: list[EvalSet]) -> tuple[dict, dict]:
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
            "ci95": {"method": f"95% percentile bootstrap, 1,000 resamples of the set's {s.grouped_by}",
                     **bootstrap_intervals(s.labels, probs[s.name], s.groups, statistics)},
        }
    return {"sets": section, "G": generalisation(section), "rule": RULE}, probs


def generalisation(section: dict) -> float:
    """G: the mean over the sets of the rule's balanced accuracy."""
    return float(np.mean([s[RULE_FIGURE] for s in section.values()]))


def edited_balanced_accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """E: balanced accuracy averaged over the edits of (N, edits, classes) probabilities (``shifts.edited``)."""
    return float(np.mean([_balanced_accuracy(labels, probs[:, k]) for k in range(probs.shape[1])]))


def counted(sets: list[EvalSet], config: dict) -> list[str]:
    """The sets G counts for a candidate trained with ``config``: none its training data shares a source with.

    HAM10000 validation always counts (the in-distribution reference); ISIC 2017 does not when the
    candidate trained on its train part (``extra``), as the rule says from v24 on.
    """
    trained_on = {ISIC2017_DIR} if config.get("extra") else set()
    return [s.name for s in sets if s.name not in trained_on]


def paired(sets: list[EvalSet], baseline: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
           resamples: int = 1000, in_g: list[str] | None = None) -> dict:
    """Candidate minus baseline on each set, on the same images and resamples, with 95% intervals; and G's
    (over ``in_g``, default every set)."""
    out = {}
    for s in sets:
        stacked = np.stack([baseline[s.name], candidate[s.name]], axis=1)
        diff = {name: difference(STATISTICS[name]) for name in PAIRED} | {RULE_FIGURE: difference(rule_statistic(
            s.labels))}
        bounds = bootstrap_intervals(s.labels, stacked, s.groups, diff, resamples)
        out[s.name] = {name: {"difference": f(s.labels, stacked), "ci95": bounds[name]} for name, f in diff.items()}
    in_g = [s.name for s in sets] if in_g is None else in_g
    out["G"] = float(np.mean([out[name][RULE_FIGURE]["difference"] for name in in_g]))
    return out


def paired_edited(ham: EvalSet, baseline: np.ndarray, candidate: np.ndarray, resamples: int = 1000) -> dict:
    """E of the candidate minus the baseline's on HAM10000 validation's edited images, with a 95% interval."""
    stacked = np.stack([baseline, candidate], axis=1)  # (N, 2, edits, classes)
    statistic = difference(edited_balanced_accuracy)
    bounds = bootstrap_intervals(ham.labels, stacked, ham.groups, {"E": statistic}, resamples)
    return {"difference": statistic(ham.labels, stacked), "ci95": bounds["E"]}


def verdict(differences: dict, candidate_ham_ece: float, sets: list[EvalSet]) -> dict:
    """The rule of docs/selection-rule.md (as it reads from v25 on) on one candidate's paired differences.

    Check 1 passes on G, or on E (``differences["edited"]``) where G does not fall.
    """
    ham, edits = differences["ham_val"], differences.get("edited")
    robust = edits is not None and differences["G"] >= 0 and edits["difference"] >= RULE_MIN_EDITED_GAIN \
        and edits["ci95"][0] > 0
    checks = {
        f"G rises by >= {RULE_MIN_GAIN}, or G >= 0 and E rises by >= {RULE_MIN_EDITED_GAIN} (interval above 0)":
            differences["G"] >= RULE_MIN_GAIN or robust,
        **{f"{s.name}: paired interval's upper end >= 0": differences[s.name][RULE_FIGURE]["ci95"][1] >= 0
           for s in sets},
        f"HAM10000 validation ECE <= {RULE_MAX_ECE}": candidate_ham_ece <= RULE_MAX_ECE,
        "ham_val: difference >= 0": ham[RULE_FIGURE]["difference"] >= 0,
        "ham_val: melanoma recall interval's upper end >= 0": ham["melanoma_recall"]["ci95"][1] >= 0,
    }
    return {"checks": checks, "passes": all(checks.values())}


def measure_exported(export_dir: str | Path, data: str | Path, seed: int = 0,
                     external_root: str | Path | None = None) -> dict:
    """Score an exported model on every validation set into its card, in place (section ``external_validation``)."""
    from model.runtime import load_classifier

    from .card import record

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


def choose(shipped: str | Path, candidates: list[str | Path], data: str | Path, seed: int = 0,
           external_root: str | Path | None = None) -> dict:
    """Each candidate export against the shipped one under the written rule, paired on the same images.

    A candidate written ``a+b`` is the ensemble of those exports: scored and judged like any other,
    but never chosen, as it would cost its members' sum to serve. It tells whether distilling it
    into one network is worth a run.
    """
    from model.runtime import load_classifier

    from .data import load_arrays
    from .shifts import edited

    sets = validation_sets(data, seed, external_root)
    ham = sets[0]
    ham_images: dict[tuple[int, int], np.ndarray] = {}  # HAM10000 validation at each input size, decoded once

    def edited_probs(runtimes: list) -> np.ndarray:
        size = tuple(runtimes[0].input_size)
        if size not in ham_images:
            ham_images[size] = load_arrays(list(ham.paths), size, desc="ham_val for the edits")
        return edited(ensemble_predict([lambda x, r=r: r.run_uint8(x).probs for r in runtimes]), ham_images[size])

    base = load_classifier(shipped)
    base_section, base_probs = score(base.predict, sets)
    base_edited = edited_probs([base])
    base_section["E"] = edited_balanced_accuracy(ham.labels, base_edited)
    version = read_json(shipped).get("version", str(shipped))
    out = {"rule": RULE, "shipped": {"export": str(shipped), "version": version, **base_section}, "candidates": {}}
    for candidate in candidates:
        members = ensemble_members(candidate)
        cards = [read_json(m) for m in members]
        in_g = counted(sets, {"extra": trains_on_isic2017(candidate)})
        runtimes = [load_classifier(m) for m in members]
        section, probs = score(ensemble_predict([r.predict for r in runtimes]), sets)
        section["G"] = generalisation({k: v for k, v in section["sets"].items() if k in in_g})
        candidate_edited = edited_probs(runtimes)
        section["E"] = edited_balanced_accuracy(ham.labels, candidate_edited)
        differences = paired(sets, base_probs, probs, in_g=in_g)
        differences["edited"] = paired_edited(ham, base_edited, candidate_edited)
        ham_ece = section["sets"]["ham_val"]["ece"]
        name = ENSEMBLE_JOIN.join(c.get("version", m) for c, m in zip(cards, members, strict=True))
        out["candidates"][name] = {"export": str(candidate), **section, "G_sets": in_g, "paired": differences,
                                   **verdict(differences, ham_ece, sets), "shippable": len(members) == 1}
    passing = [c for c, r in out["candidates"].items() if r["passes"] and r["shippable"]]
    out["chosen"] = max(passing, key=lambda c: out["candidates"][c]["G"]) if passing else None
    return out


def record_choice(result: dict) -> None:
    """Write the chosen candidate's validation figures and the whole comparison into its card."""
    from .card import record

    chosen = result["candidates"][result["chosen"]]
    summary = {"shipped": {k: result["shipped"][k] for k in ("version", "G", "E") if k in result["shipped"]}}
    record(chosen["export"], {
        "external_validation": {k: chosen[k] for k in ("sets", "G", "rule")},
        "selection": {
            "rule": result["rule"], **summary, "chosen": result["chosen"],
            "candidates": {name: {k: c[k] for k in ("G", "E", "G_sets", "paired", "checks", "passes") if k in c}
                           for name, c in result["candidates"].items()},
        },
    })


def record_rejected(result: dict) -> None:
    """No candidate passed: keep their comparison in the shipped model's card (the model is untouched)."""
    from .card import record

    shipped = result["shipped"]["export"]
    rejected = {**read_json(shipped).get("rejected", {}),
                **{name: {"rule": result["rule"], **{k: c[k] for k in ("G", "E", "G_sets", "paired", "checks",
                                                                        "passes") if k in c}}
                   for name, c in result["candidates"].items() if not c["passes"]}}
    record(shipped, {"rejected": rejected})
