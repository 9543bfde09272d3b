"""The benign/malignant risk summary: P(malignant) = P(mel) + P(bcc) + P(akiec).

The flagging threshold is an operating point chosen on the validation split (stored in the
model card), not 0.5: the summary is meant to catch most malignant lesions, at the cost of
false alarms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .card import DEFAULT_UNCERTAIN_BELOW, ModelCard
from .labels import CLASSES, DESCRIPTIONS, MALIGNANT, NAMES
from .runtime import shipped_card

DISCLAIMER = (
    "Research and teaching demo, not a medical device: it gives no diagnosis and must not "
    "guide any clinical decision. See a dermatologist about any skin lesion that worries you."
)

MALIGNANT_INDEX = [CLASSES.index(c) for c in CLASSES if c in MALIGNANT]


def percent(value: float, threshold: float | None = None) -> str:
    """``value`` as a whole percentage, with decimals only where rounding would carry it across ``threshold``.

    A page that says "no class reaches 50%" must not show the top class as "50%" (0.4989), nor say
    "below the 17%" of a "17%" (0.1695): the text and the probability bars then contradict each other.
    """
    for decimals in range(4):
        text = f"{value * 100:.{decimals}f}"
        if threshold is None or (float(text) / 100 >= threshold) == (value >= threshold):
            return text + "%"
    return f"{value:.4%}"


def malignant_probability(probs: np.ndarray) -> np.ndarray:
    """Sum of the malignant classes' probabilities, per row (or for one row)."""
    return np.asarray(probs)[..., MALIGNANT_INDEX].sum(-1)


@dataclass
class Risk:
    p_malignant: float
    threshold: float
    suspicious: bool
    top_class: str
    top_probability: float
    sensitivity: float | None = None  # on the test split, at this threshold
    specificity: float | None = None
    uncertain_below: float = DEFAULT_UNCERTAIN_BELOW  # the card's "uncertain" line, which the text must not blur

    def summary(self) -> str:
        """A few plain sentences for the page and the API.

        The flag is about the malignant classes together, not the top class: a benign top class
        can be flagged, and the text says so rather than leaving two statements that seem to clash.
        """
        top = f"{NAMES[self.top_class]} ({self.top_class})"
        if self.suspicious:
            verdict = "**Suspicious: flagged for a closer look.**"
            compare = "at or above"
        else:
            verdict = "**Lower risk: not flagged.**"
            compare = "below"
        lines = [
            f"{verdict} The malignant classes (melanoma, basal cell carcinoma, actinic keratosis/intraepithelial "
            f"carcinoma) together get {percent(self.p_malignant, self.threshold)}, {compare} the "
            f"{self.threshold:.0%} at which this demo flags an image.",
            f"Most likely class: {top}, {percent(self.top_probability, self.uncertain_below)}: "
            f"{DESCRIPTIONS[self.top_class]}.",
        ]
        if self.suspicious and self.top_class not in MALIGNANT:
            lines[-1] += (" That class is benign, but the malignant classes together are too likely to rule "
                          "out, so the image is flagged all the same.")
        rule = "The threshold is set low to miss few malignant lesions, so many flagged lesions are benign"
        if self.sensitivity is not None and self.specificity is not None:
            rule += (f"; on held-out test lesions it caught {self.sensitivity:.0%} of malignant lesions"
                     f" and cleared {self.specificity:.0%} of benign ones")
        lines.append(rule + ".")
        lines.append(f"_{DISCLAIMER}_")
        return "\n\n".join(lines)


def _card(card: ModelCard | Mapping | None) -> ModelCard:
    if card is None:
        card = shipped_card()
    return ModelCard.from_json(card)


def operating_point(card: ModelCard | Mapping | None = None) -> dict:
    """The card's malignant operating point as its JSON has it; ``None`` means the shipped model's card.

    The shipped point is the default so that the app, the Python API and the CLI give one
    verdict for one image. A card without an operating point falls back to 0.5.
    """
    card = _card(card)
    return {**card.get("malignant_operating_point", {}), "threshold": card.operating_point.threshold}


def assess(probs: np.ndarray, card: ModelCard | Mapping | None = None) -> Risk:
    """The risk summary of one probability row, at the operating point of ``card`` (default: the shipped one)."""
    card = _card(card)
    point = card.operating_point
    threshold = point.threshold
    p = float(malignant_probability(probs))
    top = int(np.argmax(probs))
    return Risk(
        p_malignant=p,
        threshold=threshold,
        suspicious=p >= threshold,
        top_class=CLASSES[top],
        top_probability=float(probs[top]),
        sensitivity=point.test_sensitivity,
        specificity=point.test_specificity,
        uncertain_below=card.uncertain_below,
    )
