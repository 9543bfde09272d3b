"""A run folder rebuilt from an exported model, so that ``python -m training evaluate`` re-derives its card.

An export keeps the calibrated network, its card (the run's config, best epoch and time) and its
figures, but not the run folder that ``evaluate`` reads. Rebuilding one lets a model shipped by older
code be re-scored, re-exported and re-carded by today's code (new card sections, the CAM model,
half A of the ISIC 2018 test) without retraining. What is gone stays gone: the per-epoch history
(only the best epoch is in the card), so the training-curves figure is the export's own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras

from model.card import read_json
from model.runtime import KERAS_FILE

from .config import Config, before_options
from .data import HAM_SOURCE, card_split, read_split
from .network import build_network

CURVES = "training_curves.png"


def unpack(export_dir: str | Path, data: str | Path, out: str | Path) -> Path:
    """Write ``out`` (config.json, split.csv, state.json, best.weights.h5) from ``export_dir``.

    The split is rebuilt from ``data`` and the card's seed, and checked against the card's counts;
    the weights are the uncalibrated network's (the export's temperature layer is left out, as
    ``evaluate`` fits it again on validation).
    """
    export_dir, out = Path(export_dir), Path(out)
    card = read_json(export_dir)
    training = card["training"]
    known = {k: v for k, v in training["config"].items() if k in Config.__dataclass_fields__}
    cfg = Config(**{**before_options(), **known, "data": str(data), "out": str(out)})
    cfg.size = tuple(cfg.size)
    cfg.command = training.get("command", cfg.command)
    if cfg.extra:
        raise ValueError(f"{export_dir} trained with --extra; rebuilding its split is not supported")
    card_split(card, data, cfg.seed)  # raises if the data is not the copy the model was trained on
    out.mkdir(parents=True, exist_ok=False)
    (out / "config.json").write_text(json.dumps({**cfg.__dict__, "size": list(cfg.size)}, indent=2))
    read_split(data, cfg.seed, cfg.limit).assign(source=HAM_SOURCE).to_csv(out / "split.csv", index=False)
    best = training["best_epoch"]
    state = {"history": [best], "phases_done": ["head", "finetune"], "best": best,
             "seconds": training.get("train_seconds", 0.0)}
    (out / "state.json").write_text(json.dumps(state, indent=2))

    exported = keras.models.load_model(export_dir / KERAS_FILE, compile=False)
    network = build_network(cfg.size, weights=None, dropout=cfg.dropout, colour=cfg.colour)
    for layer in network.layers:
        if layer.weights:
            layer.set_weights(exported.get_layer(layer.name).get_weights())
    network.save_weights(out / "best.weights.h5")
    if (export_dir / CURVES).is_file():
        shutil.copy(export_dir / CURVES, out / f"original_{CURVES}")
    return out
