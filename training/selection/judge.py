"""Recipes judged over their runs: the rule of docs/selection-rule.md from v35 on.

One run of a command is one draw: a replicate of the shipped recipe moved HAM10000 melanoma recall
by 0.203. So a recipe (a training command) is scored as the mean over its runs, which differ only in
``--run-seed``, and the difference of two recipes gets an interval that resamples both levels: each
resample draws every recipe's runs with replacement and the set's lesions (or images) with
replacement, the same lesions for both recipes.

The primary figure is 7-class balanced accuracy on half A of the official ISIC 2018 test set; the
guards are the other sets' figures and melanoma recall, which must not fall clearly.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model.card import read_json
from model.metrics import RESAMPLES
from model.runtime import LITERT_FILE, load_classifier

from .. import card
from ..external import (
    ISIC2017_DIR,
    STATISTICS,
    EvalSet,
    ensemble_members,
    ensemble_predict,
    predict_files,
    trains_on_isic2017,
    validation_sets,
)
from .rule import RULE_FIGURE, rule_statistic

RULE = "docs/selection-rule.md (from v35 on)"
PRIMARY = ("isic2018_test_a", "balanced_accuracy")
MIN_GAIN = 0.02  # the recipe mean of the primary figure must rise by this much
MAX_ECE = 0.05
# (set, figure): each must not fall clearly (its interval's upper end at or above 0)
GUARDS = (("ham_val", "balanced_accuracy"), ("isic2018_val", RULE_FIGURE), ("isic2018_test_a", "melanoma_recall"),
          ("ham_val", "melanoma_recall"), ("isic2017", "balanced_accuracy"))
Statistic = Callable[[np.ndarray, np.ndarray], float]


def _fingerprint(export: str) -> str:
    """What a cached answer is keyed on: the bytes of every member's LiteRT model."""
    digest = hashlib.sha256()
    for member in ensemble_members(export):
        digest.update(hashlib.sha256((Path(member) / LITERT_FILE).read_bytes()).digest())
    return digest.hexdigest()[:16]


def run_probs(export: str, sets: list[EvalSet], cache: Path | None = None) -> dict[str, np.ndarray]:
    """Each set's probabilities from one export (``a+b``: the mean of its members'), read as served.

    With ``cache``, answers are kept per model file and set, so a run scored once is not scored again.
    """
    key = _fingerprint(export)
    out, predict = {}, None
    for s in sets:
        path = cache / f"{key}-{s.name}-{len(s.paths)}.npy" if cache else None
        if path is not None and path.is_file():
            out[s.name] = np.load(path)
            continue
        if predict is None:
            predict = ensemble_predict([load_classifier(m).predict for m in ensemble_members(export)])
        out[s.name] = predict_files(predict, s.paths)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, out[s.name])
    return out


def _statistic(s: EvalSet, figure: str) -> Statistic:
    return rule_statistic(s.labels) if figure == RULE_FIGURE else STATISTICS[figure]


def recipe_difference(labels: np.ndarray, groups: np.ndarray, baseline: np.ndarray, candidate: np.ndarray,
                      statistic: Statistic, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Candidate recipe minus baseline recipe: (R, N, classes) probabilities of each recipe's runs.

    Returns each recipe's mean over its runs and per run, the difference of the means, and its 95%
    interval from resampling runs (per recipe) and groups (shared) together.
    """
    per_run = {name: [statistic(labels, p) for p in probs] for name, probs in
               (("baseline", baseline), ("candidate", candidate))}
    _, group_of = np.unique(groups, return_inverse=True)
    members = np.split(np.argsort(group_of, kind="stable"), np.cumsum(np.bincount(group_of))[:-1])
    rng = np.random.default_rng(seed)
    values = []
    with warnings.catch_warnings():  # a resample may lack a rare class; the statistic skips it
        warnings.simplefilter("ignore")
        for _ in range(resamples):
            index = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
            y = labels[index]
            means = [np.mean([statistic(y, probs[r][index]) for r in rng.integers(0, len(probs), len(probs))])
                     for probs in (baseline, candidate)]
            values.append(means[1] - means[0])
    return {
        "baseline": float(np.mean(per_run["baseline"])), "candidate": float(np.mean(per_run["candidate"])),
        "baseline_runs": per_run["baseline"], "candidate_runs": per_run["candidate"],
        "difference": float(np.mean(per_run["candidate"]) - np.mean(per_run["baseline"])),
        "ci95": [float(v) for v in np.nanpercentile(values, [2.5, 97.5])],
    }


def judge(baseline: list[str], candidate: list[str], data: str | Path, seed: int = 0,
          external_root: str | Path | None = None, cache: str | Path | None = "runs/probs", resamples: int = RESAMPLES,
          ham_ece: float | None = None) -> dict:
    """The candidate recipe (its runs' exports) against the baseline recipe's, by the rule from v35 on.

    ``ham_ece``: calibrated HAM10000 validation ECE of the model that would ship (default: the
    candidate's first export, as scored here).
    """
    sets = {s.name: s for s in validation_sets(data, seed, external_root)}
    if PRIMARY[0] not in sets:
        raise FileNotFoundError(f"{PRIMARY[0]} is not beside {data}: the rule's primary set is missing")
    cache_dir = Path(cache) if cache else None
    probs = {name: [run_probs(e, list(sets.values()), cache_dir) for e in exports]
             for name, exports in (("baseline", baseline), ("candidate", candidate))}
    stacked = {name: {s: np.stack([p[s] for p in runs]) for s in sets} for name, runs in probs.items()}
    extra = any(trains_on_isic2017(e) for e in [*baseline, *candidate])  # a set either side trained beside
    figures = [PRIMARY] + [g for g in GUARDS if g[0] in sets and not (g[0] == ISIC2017_DIR and extra)]
    differences = {}
    for set_name, figure in figures:
        s = sets[set_name]
        differences[f"{set_name}/{figure}"] = recipe_difference(
            s.labels, s.groups, stacked["baseline"][set_name], stacked["candidate"][set_name],
            _statistic(s, figure), resamples)
    if ham_ece is None:
        ham_ece = STATISTICS["ece"](sets["ham_val"].labels, stacked["candidate"]["ham_val"][0])
    primary = differences[f"{PRIMARY[0]}/{PRIMARY[1]}"]
    checks = {
        f"{PRIMARY[0]} {PRIMARY[1]}: recipe mean rises by >= {MIN_GAIN}, interval's lower end > 0":
            primary["difference"] >= MIN_GAIN and primary["ci95"][0] > 0,
        **{f"{key}: interval's upper end >= 0": d["ci95"][1] >= 0 for key, d in differences.items()
           if key != f"{PRIMARY[0]}/{PRIMARY[1]}"},
        f"ham_val ECE of the model to ship <= {MAX_ECE}": ham_ece <= MAX_ECE,
    }
    return {"rule": RULE, "baseline": list(map(str, baseline)), "candidate": list(map(str, candidate)),
            "differences": differences, "ham_ece": float(ham_ece), "checks": checks, "passes": all(checks.values()),
            "isic2017_counted": not extra, "resamples": resamples}


def report(result: dict) -> list[str]:
    """The verdict as lines: each figure's recipe means, runs and difference with its interval, then the checks."""
    lines = [f"baseline recipe: {', '.join(result['baseline'])}", f"candidate recipe: {', '.join(result['candidate'])}"]
    for key, d in result["differences"].items():
        runs = " / ".join(f"{v:.3f}" for v in d["baseline_runs"]), " / ".join(f"{v:.3f}" for v in d["candidate_runs"])
        lines.append(f"{key:<38} baseline {d['baseline']:.3f} ({runs[0]})  candidate {d['candidate']:.3f} "
                     f"({runs[1]})  difference {d['difference']:+.3f} ({d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})")
    lines += [f"    {'pass' if ok else 'FAIL'}  {check}" for check, ok in result["checks"].items()]
    lines.append("the candidate recipe passes" if result["passes"] else "the candidate recipe does not pass")
    return lines


def record(result: dict, export_dir: str | Path, label: str) -> None:
    """Keep a verdict in an export's card (section ``judged``, one entry per comparison), for the card to show
    how the model was chosen or which recipes were judged against it."""
    judged = {**read_json(export_dir).get("judged", {}),
              label: {k: result[k] for k in ("rule", "baseline", "candidate", "differences", "checks", "passes",
                                             "resamples")}}
    card.record(export_dir, {"judged": judged})
