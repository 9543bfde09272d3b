"""Write a trained network in the form ``model/`` ships: .keras, LiteRT flatbuffer, card."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from model.card import read_json
from model.runtime import KERAS_FILE, LITERT_FILE, Classifier, load_classifier, sha256

from .card import record
from .data import card_split, load_arrays
from .network import serving_model


def write_litert(model: keras.Model, path: str | Path) -> None:
    """``model`` (batch of any size) as a LiteRT flatbuffer: traced once, its variables frozen, converted.

    Keras' own ``export(format="litert")`` writes a SavedModel and reads it back first: the same answers
    (checked against Keras at every export) in 10 s instead of 2 s for MobileNetV2 on 2 cores, and the
    export is the largest part of scoring a short run. Without ``trackable_obj`` the converter takes its
    graph path (TensorFlow warns that it is deprecated); with it, it saves a SavedModel again (8 s).
    """
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=model.input.name)
    traced = tf.function(lambda images: model(images, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([convert_variables_to_constants_v2(traced)])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    Path(path).write_bytes(converter.convert())


def export_model(network: keras.Model, out_dir: str | Path, check_images: np.ndarray) -> tuple[Classifier, dict]:
    """Save the .keras and LiteRT files and check that LiteRT matches Keras on ``check_images``.

    ``check_images`` are scaled network inputs. Returns the exported runtime (so figures that
    depend on it, like the OOD threshold, are computed on what ships) and the card's file entries.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = keras.Model(network.input, network.output, name=network.name)  # no optimizer state
    clean.save(out_dir / KERAS_FILE)
    write_litert(serving_model(network), out_dir / LITERT_FILE)

    # a few images: one eager call, not `predict`, which would trace a function for them (seconds)
    reference = [np.asarray(a) for a in serving_model(network)(check_images, training=False)]
    runtime = Classifier(out_dir / LITERT_FILE, num_threads=2)  # no card yet: nothing to verify against
    probs, features = runtime.run(check_images)
    return runtime, {
        "litert_vs_keras": {
            "images": int(len(check_images)),
            "max_abs_diff_probs": float(np.abs(probs - reference[0]).max()),
            "max_abs_diff_features": float(np.abs(features - reference[1]).max()),
        },
        "files": {
            name: {"sha256": sha256(out_dir / name), "bytes": (out_dir / name).stat().st_size}
            for name in (KERAS_FILE, LITERT_FILE)
        },
    }


def _current_entries(out_dir: Path, source: dict) -> dict | None:
    """The card's model-file entries if ``out_dir`` ships the model made from ``source`` with its model
    files as the card recorded them; else None."""
    card = read_json(out_dir, missing_ok=True)
    files = card.get("files", {})
    current = (card.get("exported_from") == source and set(files) == {KERAS_FILE, LITERT_FILE}
               and all((out_dir / name).is_file() and sha256(out_dir / name) == entry.get("sha256")
                       for name, entry in files.items()))
    return {"litert_vs_keras": card["litert_vs_keras"], "files": files, "exported_from": source} if current else None


def holds(out_dir: str | Path, source: dict) -> bool:
    """Whether ``out_dir`` ships the model made from ``source``, its model files as its card recorded them."""
    return _current_entries(Path(out_dir), source) is not None


def export_unless_current(network: keras.Model, out_dir: str | Path, check_images: np.ndarray,
                          source: dict) -> tuple[Classifier, dict]:
    """``export_model``, unless ``out_dir`` already ships the model made from ``source`` (the run's best
    weights file and temperature): then its model files and their entries are kept as they are.

    Scoring a finished run again (``evaluate``, a resumed run) changes the card, not the network,
    and the LiteRT conversion is most of what scoring costs.
    """
    out_dir = Path(out_dir)
    if (entries := _current_entries(out_dir, source)) is not None:
        print(f"{out_dir} already holds these weights: its model files are kept (delete them to convert again)",
              flush=True)
        return Classifier(out_dir / LITERT_FILE, num_threads=2), entries
    runtime, entries = export_model(network, out_dir, check_images)
    return runtime, {**entries, "exported_from": source}


class Opened(NamedTuple):
    """An exported model with its card, and its split's validation and test images."""

    card: dict
    runtime: Classifier
    arrays: dict[str, np.ndarray]  # "val", "test": uint8 (N, H, W, 3) at the model's input size
    labels: dict[str, np.ndarray]
    lesions: dict[str, np.ndarray]  # each image's lesion_id (for intervals that resample lesions)


def open_export(export_dir: str | Path, data: str | Path, seed: int = 0) -> Opened:
    """An exported model with its card, and its validation and test images, labels and lesions.

    For a model whose run folder is gone (the shipped one): the split is rebuilt from the data
    and the seed (``card_split`` checks it against the card), so its figures can be measured again.
    """
    export_dir = Path(export_dir)
    card = read_json(export_dir)
    meta = card_split(card, data, seed)
    runtime = load_classifier(export_dir)
    parts = {name: meta[meta.split == name] for name in ("val", "test")}
    return Opened(
        card,
        runtime,
        {name: load_arrays(list(part.path), runtime.input_size, desc=name) for name, part in parts.items()},
        {name: part.label.to_numpy() for name, part in parts.items()},
        {name: part.lesion_id.to_numpy() for name, part in parts.items()},
    )


def measure_in_place(export_dir: str | Path, data: str | Path, seed: int, key: str,
                     measure: Callable[[Opened], dict], replaces: tuple[str, ...] = ()) -> dict:
    """The skeleton of a study: open an export, ``measure`` it, write the section ``key`` into its card.

    The model files and every other section stay as they are; ``replaces``: older names of the
    section, dropped. Returns the section.
    """
    section = measure(open_export(export_dir, data, seed))
    record(export_dir, {key: section}, remove=replaces)
    return section
