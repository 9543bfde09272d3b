"""The seven HAM10000 diagnoses, in the column order every output of this project uses."""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

NAMES: dict[str, str] = {
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis-like lesion",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic nevus",
    "vasc": "Vascular lesion",
}

DESCRIPTIONS: dict[str, str] = {
    "akiec": "a sun-induced precancerous or early (in situ) squamous cell cancer of the skin surface",
    "bcc": "a slow-growing malignant tumour of the skin's basal cells that rarely spreads",
    "bkl": "a benign growth such as seborrhoeic keratosis, solar lentigo or lichen-planus-like keratosis",
    "df": "a benign, firm fibrous nodule of the dermis",
    "mel": "a malignant tumour of pigment cells that can spread",
    "nv": "a benign mole made of pigment cells",
    "vasc": "a benign blood-vessel lesion such as a cherry angioma or angiokeratoma",
}

# Classes summed into P(malignant) for the risk summary.
MALIGNANT: frozenset[str] = frozenset({"mel", "bcc", "akiec"})


def display_name(code: str) -> str:
    """'Melanoma (mel)': the label a person reads."""
    return f"{NAMES[code]} ({code})"


def class_index(label: str | int | None, probs=None) -> int:
    """Resolve a class code, an index or None (the top class of ``probs``) to an index."""
    if label is None:
        if probs is None:
            raise ValueError("label=None needs the probabilities to pick the top class")
        return int(probs.argmax())
    if isinstance(label, str):
        if label not in CLASSES:
            raise ValueError(f"unknown class {label!r}; expected one of {', '.join(CLASSES)}")
        return CLASSES.index(label)
    index = int(label)
    if not 0 <= index < len(CLASSES):
        raise ValueError(f"class index {label} out of range 0..{len(CLASSES) - 1}")
    return index
