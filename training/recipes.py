"""The recipe table: a run beside earlier ones, what each changed and its best validation figures.

The rows come from run folders (``config.json``, ``state.json``) or from exported model cards,
which carry their own table, so a shipped card can gain the rows of runs that were not shipped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from model.card import card_file, read_json

from .card import record
from .config import Config, before_options, compared_options


def recipe_summaries(source: str | Path) -> list[dict]:
    """Config and best validation epoch of an earlier run folder, or of an exported model card.

    A card also brings the rows of its own recipe table (each row's config is the card's with that
    row's differences), so the table survives when the earlier run folders are gone.
    """
    source = Path(source)
    if source.is_dir():
        config = json.loads((source / "config.json").read_text())
        state = json.loads((source / "state.json").read_text())
        return [{"name": source.name, "config": config, "best": state["best"], "seconds": state.get("seconds")}]
    card = read_json(source)
    config = card["training"]["config"]
    name = card.get("version", source.stem)
    summaries = [{"name": name, "config": config, "best": card["training"]["best_epoch"],
                  "seconds": card["training"].get("train_seconds")}]
    for row in card.get("ablation", []):
        if row["run"] != name:
            phase, epoch = row["best_epoch"].split()
            best = {"phase": phase, "epoch": int(epoch), "val_balanced_accuracy": row["val_balanced_accuracy"],
                    "val_macro_auc": row["val_macro_auc"]}
            minutes = row.get("train_minutes")
            summaries.append({"name": row["run"], "config": {**config, **row["differs"]}, "best": best,
                              "seconds": None if minutes is None else minutes * 60})
    return summaries


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def ablation(cfg: Config, best: dict, others: list[dict], seconds: float | None = None) -> list[dict]:
    """This run beside earlier ones: what each changed, its best validation figures, its training time."""
    mine = {k: v for k, v in asdict(cfg).items() if k in compared_options()}
    rows = [{"run": Path(cfg.out).name, "differs": {}, "val_balanced_accuracy": best["val_balanced_accuracy"],
             "val_macro_auc": best["val_macro_auc"], "best_epoch": f"{best['phase']} {best['epoch']}",
             "train_minutes": _minutes(seconds)}]
    defaults = before_options()
    seen = {rows[0]["run"]}
    for other in others:
        if other["name"] in seen:  # the same run reached twice (its folder and a card's row): first one wins
            continue
        seen.add(other["name"])
        # an option newer than that run is absent from its config: what runs did before it existed
        theirs = {**defaults, **other["config"]}
        differs = {k: theirs[k] for k in mine if k in theirs and list(np.atleast_1d(theirs[k])) != list(
            np.atleast_1d(mine[k]))}
        rows.append({"run": other["name"], "differs": differs,
                     "val_balanced_accuracy": other["best"]["val_balanced_accuracy"],
                     "val_macro_auc": other["best"]["val_macro_auc"],
                     "best_epoch": f"{other['best']['phase']} {other['best']['epoch']}",
                     "train_minutes": _minutes(other.get("seconds"))})
    return rows


def card_config(card: dict) -> Config:
    """The Config a card's model was trained with (an option newer than the card: what runs did before it)."""
    known = {f.name for f in fields(Config)} - {"data", "out"}
    config = {**before_options(), **card["training"]["config"]}
    config = {k: v for k, v in config.items() if k in known}
    return Config(data="", out=card.get("version", "model"), **config)


def add_to_card(card_path: str | Path, sources: list[str | Path], probe: str | Path | None = None) -> list[dict]:
    """Add runs (folders or cards) to a model card's recipe table; rewrite its JSON and Markdown.

    The model, its figures and its other numbers are untouched: this records runs that were
    measured on validation but not shipped. A run already in the table is replaced by the one given.
    ``probe`` (a ``python -m training probe`` result) replaces the card's colour-preprocessing table.
    """
    card = read_json(card_path)
    sections = {}
    if probe:
        sections["colour_probe"] = read_probe(probe)
    added = {s["name"]: s for source in sources for s in recipe_summaries(source)}
    earlier = [added.pop(s["name"], s) for s in recipe_summaries(card_path)[1:]]  # replaced in place
    sections["ablation"] = ablation(card_config(card), card["training"]["best_epoch"],
                                    earlier + list(added.values()), card["training"].get("train_seconds"))
    record(card_file(card_path).parent, sections)
    return sections["ablation"]


def read_probe(path: str | Path) -> dict:
    """The per-variant results of a ``python -m training probe`` result, ``probe.json`` (what a model card's
    colour_probe holds): read here, so that editing a card loads no Keras."""
    return json.loads(Path(path).read_text())["results"]
