"""A run that starts from another finished run's weights (``--init RUN``), not from ImageNet's.

Distilling an ensemble into one of its own recipe's runs asks that network to move from one
member's function to the ensemble's, a shorter way than from ImageNet features; a run that starts
there is cheap (a few epochs at a low learning rate) and keeps one network to serve. The start
must share the new run's network and its split: weights that saw the new run's validation images
would make the choices made on them flatter it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .config import before_options
from .soup import BEST, SHARED  # what a soup's members share, a start shares with the run it starts


def init_weights(run: str | Path, config: dict, meta: pd.DataFrame) -> Path:
    """The best weights of finished run folder ``run``, once shown to suit a run of ``config`` on ``meta``'s split."""
    run = Path(run)
    for path in (run / "config.json", run / "split.csv", run / BEST):
        if not path.is_file():
            raise FileNotFoundError(f"--init {run}: {path.name} not found; --init takes a finished run folder")
    start = {**before_options(), **json.loads((run / "config.json").read_text())}
    if start["train_bn"] or config["train_bn"]:
        raise ValueError("--init needs both runs to keep ImageNet's batch-norm statistics (no --train-bn)")
    differ = [k for k in SHARED if _value(start.get(k)) != _value(config.get(k))]
    if differ:
        raise ValueError(f"--init {run} differs from this run in {', '.join(differ)}: its weights do not fit")
    theirs = pd.read_csv(run / "split.csv").set_index("image_id").split
    ours = meta.set_index("image_id").split
    shared = ours.index.intersection(theirs.index)
    held_out = ours[ours != "train"].index
    if not held_out.isin(shared).all() or (theirs[shared] != ours[shared]).any():
        raise ValueError(f"--init {run} was trained on another split: it saw images this run holds out")
    return run / BEST


def _value(v):
    return list(v) if isinstance(v, tuple) else v
