"""Write a trained network in the form ``model/`` ships: .keras, LiteRT flatbuffer, card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np

from model.network import serving_model
from model.runtime import CARD_FILE, KERAS_FILE, LITERT_FILE, Classifier, sha256

from .card import render_markdown

FIGURES = ("confusion_test.png", "training_curves.png")


def export(network: keras.Model, out_dir: str | Path, card: dict, check_images: np.ndarray,
           figures_from: str | Path | None = None) -> dict:
    """Save both model files, check that LiteRT matches Keras on ``check_images``, write the card.

    ``check_images`` are already scaled network inputs; the card's figures are copied from
    ``figures_from``. Returns the card as written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = keras.Model(network.input, network.output, name=network.name)  # no optimizer state
    clean.save(out_dir / KERAS_FILE)
    serving_model(network).export(str(out_dir / LITERT_FILE), format="litert", verbose=False)

    reference = serving_model(network).predict(check_images, verbose=0)
    probs, features = Classifier(out_dir / LITERT_FILE, num_threads=2).run(check_images)  # card not written yet
    agreement = {
        "images": int(len(check_images)),
        "max_abs_diff_probs": float(np.abs(probs - reference[0]).max()),
        "max_abs_diff_features": float(np.abs(features - reference[1]).max()),
    }
    card = {
        **card,
        "litert_vs_keras": agreement,
        "files": {
            name: {"sha256": sha256(out_dir / name), "bytes": (out_dir / name).stat().st_size}
            for name in (KERAS_FILE, LITERT_FILE)
        },
    }
    (out_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    (out_dir / "MODEL_CARD.md").write_text(render_markdown(card))
    for name in FIGURES if figures_from else ():
        shutil.copy(Path(figures_from) / name, out_dir / name)
    return card
