"""python -m benchmarks.bootstrap [--resamples N]: the lesion bootstrap of the card's headline figures,
with the numpy statistics of ``model.metrics`` beside scikit-learn's (the baseline), in the same run.

Every run's card, every study's intervals and ``python -m training judge`` resample a split's
lesions a thousand times and score six figures on each draw; the draw costs little, the scoring
most. The set is HAM10000 validation's size (1,379 images of 1,009 lesions) with random answers;
both sides see the same resamples, so their intervals must agree to the last digit.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from model.metrics import HEADLINE, bootstrap_intervals
from model.risk import MALIGNANT_INDEX, malignant_probability


def _sklearn_macro_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    aucs = [roc_auc_score(labels == k, probs[:, k]) for k in range(probs.shape[1])
            if 0 < (labels == k).sum() < len(labels)]
    return float(np.mean(aucs)) if aucs else float("nan")


def _sklearn_malignant_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    malignant = np.isin(labels, MALIGNANT_INDEX)
    return float(roc_auc_score(malignant, malignant_probability(probs))) if 0 < malignant.sum() < len(labels) \
        else float("nan")


SKLEARN = {**HEADLINE,
           "balanced_accuracy": lambda labels, probs: float(balanced_accuracy_score(labels, probs.argmax(1))),
           "macro_auc": _sklearn_macro_auc, "malignant_auc": _sklearn_malignant_auc}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bootstrap", description=__doc__)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--images", type=int, default=1379)
    parser.add_argument("--lesions", type=int, default=1009)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, args.images)
    probs = rng.dirichlet(np.ones(7), args.images)
    lesions = rng.integers(0, args.lesions, args.images)
    results = {}
    for name, statistics in (("scikit-learn (baseline)", SKLEARN), ("model.metrics (numpy)", HEADLINE)):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[name] = (bootstrap_intervals(labels, probs, lesions, statistics, args.resamples),
                             time.perf_counter() - start)
    (base, base_s), (ours, ours_s) = results.values()
    gap = max(abs(a - b) for k in base for a, b in zip(base[k], ours[k], strict=True))
    print(f"{args.resamples} resamples of {args.images} images ({args.lesions} lesions), six figures each\n")
    print("| statistics | seconds | speed-up |\n|---|---|---|")
    print(f"| scikit-learn (baseline) | {base_s:.2f} | 1.0x |")
    print(f"| model.metrics (numpy) | {ours_s:.2f} | {base_s / ours_s:.1f}x |")
    print(f"\nlargest difference between the two sides' interval ends: {gap:.2e}")


if __name__ == "__main__":
    main()
