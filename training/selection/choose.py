"""Choosing a model: each candidate export against the shipped one, paired, under the written rule.

``python -m training choose``: every candidate and the shipped model are scored on the same
validation sets (``training.external``) and on HAM10000 validation's edited images
(``training.studies.robustness.edited``); the candidate's paired differences, with 95% intervals
on the same resamples, go to the rule (``training.selection.rule.verdict``); the comparison is
recorded in the chosen model's card, or, when none passes, in the shipped one's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.card import read_json
from model.metrics import RESAMPLES, bootstrap_intervals
from model.runtime import load_classifier

from ..card import record
from ..config import ENSEMBLE_JOIN
from ..data import load_arrays
from ..external import (
    ISIC2017_DIR,
    STATISTICS,
    EvalSet,
    ensemble_members,
    ensemble_predict,
    score,
    trains_on_isic2017,
    validation_sets,
)
from ..studies.intervals import difference
from ..studies.robustness import edited
from .rule import PAIRED, RULE, RULE_FIGURE, edited_balanced_accuracy, generalisation, rule_statistic, verdict


def counted(sets: list[EvalSet], config: dict) -> list[str]:
    """The sets G counts for a candidate trained with ``config``: none its training data shares a source with.

    HAM10000 validation always counts (the in-distribution reference); ISIC 2017 does not when the
    candidate trained on its train part (``extra``), as the rule says from v24 on.
    """
    trained_on = {ISIC2017_DIR} if config.get("extra") else set()
    return [s.name for s in sets if s.name not in trained_on]


def paired(sets: list[EvalSet], baseline: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
           resamples: int = RESAMPLES, in_g: list[str] | None = None) -> dict:
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


def paired_edited(ham: EvalSet, baseline: np.ndarray, candidate: np.ndarray, resamples: int = RESAMPLES) -> dict:
    """E of the candidate minus the baseline's on HAM10000 validation's edited images, with a 95% interval."""
    stacked = np.stack([baseline, candidate], axis=1)  # (N, 2, edits, classes)
    statistic = difference(edited_balanced_accuracy)
    bounds = bootstrap_intervals(ham.labels, stacked, ham.groups, {"E": statistic}, resamples)
    return {"difference": statistic(ham.labels, stacked), "ci95": bounds["E"]}


def choose(shipped: str | Path, candidates: list[str | Path], data: str | Path, seed: int = 0,
           external_root: str | Path | None = None) -> dict:
    """Each candidate export against the shipped one under the written rule, paired on the same images.

    A candidate written ``a+b`` is the ensemble of those exports: scored and judged like any other,
    but never chosen, as it would cost its members' sum to serve. It tells whether distilling it
    into one network is worth a run.
    """
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
    shipped = result["shipped"]["export"]
    rejected = {**read_json(shipped).get("rejected", {}),
                **{name: {"rule": result["rule"], **{k: c[k] for k in ("G", "E", "G_sets", "paired", "checks",
                                                                        "passes") if k in c}}
                   for name, c in result["candidates"].items() if not c["passes"]}}
    record(shipped, {"rejected": rejected})
