"""How sure the card's figures are: 95% intervals from a bootstrap over lesions.

A split of ~1,400 images holds 14-30 images of the rare classes, so balanced accuracy moves by
several points from one draw of lesions to another. The card gives each headline figure with its
interval, so a difference between two runs, or the distance to a target, can be read against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from model.metrics import HEADLINE, RESAMPLES, at_threshold, bootstrap_intervals

from ..export import measure_in_place


def split_intervals(labels: np.ndarray, probs: np.ndarray, lesions: np.ndarray, threshold: float,
                    resamples: int = RESAMPLES) -> dict:
    """Intervals of the headline figures and of the risk summary's sensitivity and specificity."""

    def at(key: str):
        def statistic(y: np.ndarray, p: np.ndarray) -> float:
            value = at_threshold(y, p, threshold)[key]
            return float("nan") if value is None else value
        return statistic

    statistics = {**HEADLINE, "malignant_sensitivity": at("sensitivity"), "malignant_specificity": at("specificity")}
    return {
        "method": f"95% percentile bootstrap, {resamples:,} resamples of the split's lesions "
                  "(each with all its images)",
        **bootstrap_intervals(labels, probs, lesions, statistics, resamples),
    }


def measure_exported(export_dir: str | Path, data: str | Path, seed: int = 0) -> dict:
    """Add the intervals of an exported model's validation and test figures to its card, in place.

    For a model whose run folder is gone (the shipped one): its split is rebuilt from the data and
    the seed, and its answers are the exported runtime's. Nothing but the intervals changes.
    """
    def measure(opened) -> dict:  # the card's metrics, each split's with its intervals
        threshold = opened.card["malignant_operating_point"]["threshold"]
        resamples = opened.card["training"]["config"].get("resamples", RESAMPLES)  # as the run measured them
        metrics = opened.card["metrics"]
        for name, images in opened.arrays.items():
            metrics[name]["ci95"] = split_intervals(opened.labels[name], opened.runtime.predict(images),
                                                    opened.lesions[name], threshold, resamples)
        return metrics

    return measure_in_place(export_dir, data, seed, "metrics", measure)


def difference(statistic):
    """A statistic of the second of a stacked (N, 2, classes) pair minus the first's."""
    return lambda labels, pair: statistic(labels, pair[:, 1]) - statistic(labels, pair[:, 0])


def paired_differences(labels: np.ndarray, baseline: np.ndarray, other: np.ndarray, lesions: np.ndarray,
                       resamples: int = RESAMPLES) -> dict:
    """Each headline figure of ``other`` minus ``baseline`` on the same images, with a 95% interval.

    Both are scored on every resample of lesions, so what the two runs share (which lesions are
    hard) cancels: the interval of a difference is far narrower than either run's own interval.
    """
    stacked = np.stack([baseline, other], axis=1)  # (N, 2, classes): one resample indexes both
    statistics = {name: difference(f) for name, f in HEADLINE.items()}
    bounds = bootstrap_intervals(labels, stacked, lesions, statistics, resamples)
    return {name: {"difference": statistics[name](labels, stacked), "ci95": bounds[name]} for name in HEADLINE}


def compare_runs(runs: list[str | Path], split: str = "val") -> dict[str, dict]:
    """Paired differences of each run from the first on one split of their (shared) lesion split.

    Reads each run folder's ``split.csv`` and ``{split}_probs.npy`` (calibrated, written by
    finish_run); the runs must share the split image for image.
    """
    folders = [Path(run) for run in runs]
    metas = [pd.read_csv(folder / "split.csv") for folder in folders]
    part = metas[0][metas[0].split == split]
    for folder, meta in zip(folders[1:], metas[1:], strict=True):
        if not meta[meta.split == split].image_id.reset_index(drop=True).equals(part.image_id.reset_index(drop=True)):
            raise ValueError(f"{folder} has another {split} split than {folders[0]}: their answers cannot be paired")
    probs = [np.load(folder / f"{split}_probs.npy") for folder in folders]
    labels, lesions = part.label.to_numpy(), part.lesion_id.to_numpy()
    return {folder.name: paired_differences(labels, probs[0], p, lesions) for folder, p in zip(folders[1:], probs[1:],
                                                                                                strict=True)}
