"""When not to trust an answer: 'uncertain' (low calibrated confidence) and 'may not be a
dermoscopic image' (features unlike the training data, features without the spatial structure
of a lesion on skin, an input with almost no detail at all, or one without colour).

All thresholds are chosen on the validation split and stored in the model card.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .card import DEFAULT_UNCERTAIN_BELOW, ModelCard, NotDermoscopicThresholds

__all__ = ["DEFAULT_UNCERTAIN_BELOW", "Flags", "energy_score", "flag", "not_dermoscopic", "structure_score"]


def energy_score(features: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Energy-style score of (N, h, w, C) ``out_relu`` features: logsumexp of the class scores.

    Uses the head's kernel as the runtime reads it from the flatbuffer (the temperature may be
    folded into it) and no bias; the threshold is calibrated with this same function on the
    exported runtime. Low scores mean unfamiliar input.
    """
    scores = features.mean(axis=(1, 2)) @ kernel
    peak = scores.max(axis=1, keepdims=True)
    return (peak + np.log(np.exp(scores - peak).sum(axis=1, keepdims=True)))[:, 0]


ood_score = energy_score  # the name before the flag had one name everywhere


def structure_score(features: np.ndarray) -> np.ndarray:
    """Spatial variation of (N, h, w, C) features, averaged over channels.

    A lesion on skin gives features that differ across the image; solid colours, noise and
    other uniform textures give nearly the same features everywhere, which the energy score
    alone does not always catch. Low scores mean no lesion-like structure.
    """
    return features.std(axis=(1, 2)).mean(axis=1)


def detail_score(inputs: np.ndarray) -> np.ndarray:
    """Mean absolute difference between neighbouring grey levels of (N, H, W, 3) network inputs.

    Solid colours and smooth gradients have almost none; skin under a dermatoscope always has
    some. The features cannot be trusted to tell: the network's zero padding gives even a
    flat image features that vary across it. Low scores mean no detail.
    """
    gray = np.asarray(inputs, np.float32).mean(axis=-1)
    return np.abs(np.diff(gray, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(gray, axis=2)).mean(axis=(1, 2))


def colour_score(inputs: np.ndarray) -> np.ndarray:
    """90th percentile over pixels of the chroma (largest minus smallest channel) of (N, H, W, 3) inputs.

    Skin under a dermatoscope is always in colour, even where a vignette blacks out the corners
    (hence a high percentile, not the mean); grey pictures (X-rays, scans, black-and-white
    photographs, text) have none, which the features do not always tell. Low scores mean no colour.
    """
    x = np.asarray(inputs, np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]  # 7x faster than max/min over the last axis
    chroma = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    return np.percentile(chroma.reshape(len(x), -1), 90, axis=1)


INPUT_SCORES = {"detail": detail_score, "colour": colour_score}  # on the network input, not the features


@dataclass
class Flags:
    """One image's two flags, by the names the page, the API and the CSV give them."""

    uncertain: bool  # top probability below the card's uncertainty threshold
    not_dermoscopic: bool  # "this may not be a dermoscopic image": a score below the card's thresholds
    energy: float  # the energy score of the features (low: unlike the training images)

    @property
    def out_of_distribution(self) -> bool:  # the name before the flag had one name everywhere
        return self.not_dermoscopic

    @property
    def ood_score(self) -> float:
        return self.energy


def not_dermoscopic(energy: np.ndarray, features: np.ndarray, thresholds: NotDermoscopicThresholds | Mapping,
                    inputs: np.ndarray | None = None) -> np.ndarray:
    """Which rows the thresholds flag: any score below its threshold (a card's JSON section works too).

    ``energy`` is ``energy_score`` of ``features``; ``inputs`` are the scaled network inputs the
    features came from (without them the detail and colour scores are not applied). The same rule serves
    requests and, in training, measures the flag's rates, so the card reports what ships.
    """
    if not isinstance(thresholds, NotDermoscopicThresholds):
        thresholds = NotDermoscopicThresholds.from_section(thresholds)
    unfamiliar = np.zeros(len(energy), bool)
    if thresholds.energy is not None:
        unfamiliar |= energy < thresholds.energy
    if thresholds.structure is not None:
        unfamiliar |= structure_score(features) < thresholds.structure
    for name, score in INPUT_SCORES.items():
        below = getattr(thresholds, name)
        if below is not None and inputs is not None:
            unfamiliar |= score(inputs) < below
    return unfamiliar


def flag(probs: np.ndarray, features: np.ndarray, kernel: np.ndarray, card: ModelCard | Mapping | None,
         inputs: np.ndarray | None = None) -> list[Flags]:
    """The two flags for each row, at the model card's thresholds (``inputs``: see ``not_dermoscopic``)."""
    card = ModelCard.from_json(card)
    below = card.uncertain_below
    scores = energy_score(features, kernel)
    unfamiliar = not_dermoscopic(scores, features, card.not_dermoscopic, inputs)
    return [
        Flags(uncertain=bool(p.max() < below), not_dermoscopic=bool(u), energy=float(s))
        for p, s, u in zip(probs, scores, unfamiliar, strict=True)
    ]
