"""When not to trust an answer: 'uncertain' (low calibrated confidence) and 'may not be a
dermoscopic image' (features unlike the training data).

Both thresholds are chosen on the validation split and stored in the model card.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_UNCERTAIN_BELOW = 0.5  # calibrated top probability: below it the answer is more likely wrong


def ood_score(features: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Energy-style score of (N, h, w, C) ``out_relu`` features: logsumexp of the class scores.

    Uses the head's kernel as the runtime reads it from the flatbuffer (the temperature may be
    folded into it) and no bias; the threshold is calibrated with this same function on the
    exported runtime. Low scores mean unfamiliar input.
    """
    scores = features.mean(axis=(1, 2)) @ kernel
    peak = scores.max(axis=1, keepdims=True)
    return (peak + np.log(np.exp(scores - peak).sum(axis=1, keepdims=True)))[:, 0]


@dataclass
class Flags:
    uncertain: bool
    out_of_distribution: bool
    ood_score: float


def flag(probs: np.ndarray, features: np.ndarray, kernel: np.ndarray, card: dict | None) -> list[Flags]:
    """The two flags for each row, at the model card's thresholds."""
    card = card or {}
    below = float(card.get("uncertainty", {}).get("threshold", DEFAULT_UNCERTAIN_BELOW))
    ood_threshold = card.get("ood", {}).get("threshold")
    scores = ood_score(features, kernel)
    return [
        Flags(
            uncertain=bool(p.max() < below),
            out_of_distribution=bool(ood_threshold is not None and s < float(ood_threshold)),
            ood_score=float(s),
        )
        for p, s in zip(probs, scores, strict=True)
    ]
