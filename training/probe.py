"""Linear-probe ablation of colour preprocessing: which input helps ImageNet features most?

    python -m training probe --data ../shared/data/ham10000 --out runs/probe

For each variant (none, Shades of Gray colour constancy, the seeds' grayscale + histogram
equalisation: the layers of ``training.network.COLOUR``) the frozen ImageNet MobileNetV2 embeds the
train and validation splits (the same lesion-grouped split as training, seed 0) and a
class-balanced logistic regression is fitted on train and scored on validation. Minutes instead
of a fine-tuning run per variant: it measures what each input keeps of the information the
features can use, not the fine-tuned result.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression

from model.labels import CLASSES
from model.metrics import classification_metrics
from model.preprocessing import INPUT_SIZE, scale

from .data import load_arrays, read_split
from .network import COLOUR, IMAGENET_WEIGHTS


def probe(data: str, out: str, seed: int = 0, limit: int | None = None) -> dict:
    meta = read_split(data, seed, limit)
    parts = {name: meta[meta.split == name] for name in ("train", "val")}
    arrays = {name: load_arrays(list(p.path), INPUT_SIZE, desc=f"loading {name}") for name, p in parts.items()}
    labels = {name: p.label.to_numpy() for name, p in parts.items()}
    base = keras.applications.MobileNetV2(input_shape=(*INPUT_SIZE, 3), include_top=False, pooling="avg",
                                          weights=str(IMAGENET_WEIGHTS))
    results = {}
    for variant, layer in COLOUR.items():  # the colour layers a trained network would start with
        image = keras.Input((*INPUT_SIZE, 3))
        embed = keras.Model(image, base(layer()(image) if layer else image))
        features = {name: embed.predict(scale(a.astype(np.float32)), batch_size=64, verbose=0)
                    for name, a in arrays.items()}
        head = LogisticRegression(max_iter=2000, class_weight="balanced", C=1.0)
        head.fit(features["train"], labels["train"])
        metrics = classification_metrics(labels["val"], head.predict_proba(features["val"]))
        results[variant] = {k: metrics[k] for k in ("balanced_accuracy", "macro_auc", "accuracy")}
        print(f"{variant:15s} val balanced accuracy {metrics['balanced_accuracy']:.3f} "
              f"macro AUC {metrics['macro_auc']:.3f}", flush=True)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "probe.json").write_text(json.dumps({"classes": list(CLASSES), "results": results}, indent=2))
    return results
