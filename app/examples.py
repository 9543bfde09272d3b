"""The shipped example images and their true diagnoses (shown after the model's answer)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from model.labels import NAMES

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
DX_TYPES = {"histo": "histopathology", "follow_up": "follow-up", "consensus": "expert consensus",
            "confocal": "confocal microscopy"}


def _load() -> list[dict]:
    index = EXAMPLES_DIR / "examples.csv"
    if not index.is_file():
        return []
    with open(index) as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["path"] = str(EXAMPLES_DIR / row["file"])
        row["sha256"] = hashlib.sha256(Path(row["path"]).read_bytes()).hexdigest()
    return rows


EXAMPLES = _load()
_BY_DIGEST = {row["sha256"]: row for row in EXAMPLES}
_SIZES = {Path(row["path"]).stat().st_size for row in EXAMPLES}


def true_diagnosis(data: bytes | str | Path) -> str | None:
    """'True diagnosis: Melanoma (mel), by histopathology' for a shipped example, else None.

    Recognised by content (SHA-256), hashed only when the size matches an example's.
    """
    try:
        size = len(data) if isinstance(data, bytes) else Path(data).stat().st_size
        if size not in _SIZES:
            return None
        row = _BY_DIGEST.get(hashlib.sha256(data if isinstance(data, bytes) else Path(data).read_bytes()).hexdigest())
    except OSError:
        return None
    if row is None:
        return None
    how = DX_TYPES.get(row["dx_type"], row["dx_type"])
    text = f"True diagnosis of this HAM10000 example: **{NAMES[row['dx']]} ({row['dx']})**, by {how}."
    if row.get("role") == "failure":
        text += " It is shown as a failure: an image the model gets wrong."
    return text


def labels() -> list[str]:
    """What each example's thumbnail says under it, short enough for a thumbnail: truth and the model's answer.

    The full caption (examples.csv) is in examples/README.md.
    """
    out = []
    for row in EXAMPLES:
        if row.get("role") == "failure":
            out.append(f"Failure: {row['dx']} as {row['prediction']}")
        elif row.get("role") == "correct":
            out.append(f"{row['dx']}: right, {float(row['confidence']):.0%}")
        else:
            out.append(row["dx"] + (f": model says {row['prediction']}" if row.get("prediction") else ""))
    return out
