"""Finishing a run: its best weights scored on validation and (once) test, calibrated, exported, carded.

``finish_run`` is the end of every training run and ``python -m training evaluate RUN``: it reads
everything from the run folder, fits the temperature on validation, exports the calibrated
network (``training.export``), draws the figures (``training.evaluate``) and builds the card's
sections (``*_section``), which ``training.card`` renders. The measurements a card also holds
come from ``training.studies`` (robustness, intervals, the not-dermoscopic flag) and the
validation sets (``training.external``).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from model.card import DEFAULT_UNCERTAIN_BELOW
from model.labels import CLASSES
from model.metrics import RESAMPLES, expected_calibration_error, fit_temperature, group_accuracy, temper
from model.preprocessing import scale
from model.runtime import sha256

from .card import write_card
from .config import SOUP_FILE, Config, before_options
from .data import EXTRA_SOURCES, HAM_SOURCE, SPLITS, load_arrays
from .evaluate import (
    at_threshold,
    classification_metrics,
    operating_point,
    plot_confusion_matrix,
    plot_history,
    plot_misclassified,
    plot_reliability,
    plot_roc_curves,
)
from .export import export_unless_current
from .external import score as score_external
from .external import validation_sets
from .network import build_network, calibrated
from .recipes import ablation, read_probe, recipe_summaries
from .state import RunState
from .studies.flags import calibrate as calibrate_not_dermoscopic
from .studies.intervals import split_intervals
from .studies.robustness import robustness, runtime_predict


def _image_size(path: str) -> str:
    """The stored size of the data set's images ("400x300 px"), which the recipe's crops draw detail from."""
    with Image.open(path) as image:
        return f"{image.width}x{image.height} px"


def throughput(history: list[dict]) -> dict:
    """Median training images per second of each phase (validation passes excluded), where the run measured it."""
    phases = {}
    for record in history:
        if "train_images_per_second" in record:
            phases.setdefault(record["phase"], []).append(record["train_images_per_second"])
    return {phase: {"median_images_per_second": float(np.median(v)), "epochs": len(v)} for phase, v in phases.items()}


@dataclass
class ScoredRun:
    """A finished run's validation and test splits, scored once by its best weights.

    What every card section reads; the test split is scored here only, after every choice.
    """

    out: Path
    cfg: Config
    state: RunState
    meta: pd.DataFrame
    arrays: dict[str, np.ndarray]  # uint8 images at the input size
    inputs: dict[str, np.ndarray]  # the same, scaled for the network
    labels: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]  # the Keras network's probabilities, before calibration
    temperature: float  # fitted on validation
    probs: dict[str, np.ndarray]  # calibrated


def score_run(run_dir: str | Path):
    """(network with the best weights, ``ScoredRun``) of a run folder."""
    out = Path(run_dir)
    cfg = Config(**{**before_options(), **json.loads((out / "config.json").read_text()), "out": str(out)})
    cfg.size = tuple(cfg.size)
    meta = pd.read_csv(out / "split.csv")
    network = build_network(cfg.size, weights=None, dropout=cfg.dropout, colour=cfg.colour)
    network.load_weights(out / "best.weights.h5")
    arrays, inputs, labels, raw = {}, {}, {}, {}
    for name in ("val", "test"):
        part = meta[meta.split == name]
        arrays[name] = load_arrays(list(part.path), cfg.size, cfg.workers, desc=f"loading {name}")
        inputs[name] = scale(arrays[name].astype(np.float32))
        labels[name] = part.label.to_numpy()
        raw[name] = network.predict(inputs[name], batch_size=64, verbose=0)
    temperature = fit_temperature(labels["val"], raw["val"])  # built into the exported model
    probs = {name: temper(p, temperature) for name, p in raw.items()}
    return network, ScoredRun(out, cfg, RunState(out / "state.json"), meta, arrays, inputs, labels, raw,
                              temperature, probs)


def flip_tta(network, run: ScoredRun) -> dict:
    """Validation balanced accuracy with the mean over horizontal and vertical flips (test-time augmentation)."""
    x = run.inputs["val"]
    flipped = [x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]]
    probs = [temper(p, run.temperature)
             for p in [run.raw["val"], *(network.predict(v, batch_size=64, verbose=0) for v in flipped)]]
    labels = run.labels["val"]
    return {
        "val_balanced_accuracy_single": classification_metrics(labels, probs[0])["balanced_accuracy"],
        "val_balanced_accuracy_4_flips": classification_metrics(labels, np.mean(probs, 0))["balanced_accuracy"],
        "cost": "4 model calls per image",
    }


def split_results(run: ScoredRun, threshold: float, resamples: int = RESAMPLES) -> dict:
    """Each split's metrics, calibration error and lesion-bootstrap intervals (at the operating point)."""
    results = {}
    for name in ("val", "test"):
        results[name] = classification_metrics(run.labels[name], run.probs[name])
        results[name]["ece_uncalibrated"] = expected_calibration_error(run.labels[name], run.raw[name])
        results[name]["ece"] = expected_calibration_error(run.labels[name], run.probs[name])
        lesions = run.meta[run.meta.split == name].lesion_id.to_numpy()
        results[name]["ci95"] = split_intervals(run.labels[name], run.probs[name], lesions, threshold,
                                                  resamples)
    return results


def draw_figures(run: ScoredRun, results: dict, test_features: np.ndarray, head_kernel: np.ndarray) -> list[int]:
    """The run's figures (into its folder; the export copies them); returns the misclassified test images shown."""
    out, labels, probs = run.out, run.labels, run.probs
    for name in ("val", "test"):
        plot_confusion_matrix(results[name]["confusion_matrix"], out / f"confusion_{name}.png",
                              f"Confusion matrix, {name} split ({len(probs[name])} images)")
    plot_history(run.state.history, out / "training_curves.png")
    n_test = len(labels["test"])
    plot_roc_curves(labels["test"], probs["test"], out / "roc_test.png", f"ROC curves, test split ({n_test} images)")
    plot_reliability(labels["test"], run.raw["test"], probs["test"], out / "reliability_test.png",
                     title="Reliability, test split")
    return plot_misclassified(run.arrays["test"], labels["test"], probs["test"], test_features, head_kernel,
                              out / "misclassified_test.png")


def model_section(run: ScoredRun) -> dict:
    """What the model is: name, version (the run's name), classes, input, preprocessing, architecture."""
    return {
        "name": "skin_mobilenetv2",
        "version": run.out.name,
        "classes": list(CLASSES),
        "input_size": {"height": run.cfg.size[0], "width": run.cfg.size[1]},
        "preprocessing": "RGB, whole image resized to the input size (no crop), scaled to [-1, 1]"
        + {"none": "", "shades_of_gray": ", Shades of Gray colour constancy (p = 6) as the network's first layer",
           "gray_equalised": ", grayscale and histogram equalisation as the network's first layer"}[run.cfg.colour],
        "architecture": "MobileNetV2 1.0 (ImageNet) -> global average pooling -> dropout -> dense(7) "
        "-> temperature scaling -> softmax",
        "temperature": run.temperature,
    }


def data_section(run: ScoredRun) -> dict:
    """The images each split holds (HAM10000's, and the extra training images, counted apart)."""
    meta = run.meta
    ham = meta.source.eq(HAM_SOURCE) if "source" in meta else pd.Series(True, index=meta.index)
    return {
        "dataset": "HAM10000 (Tschandl et al., Sci. Data 5, 180161, 2018), CC BY-NC 4.0",
        "images": {n: int(((meta.split == n) & ham).sum()) for n in SPLITS},
        "lesions": {n: int(meta[(meta.split == n) & ham].lesion_id.nunique()) for n in SPLITS},
        **({"extra_train": {"dataset": "; ".join(EXTRA_SOURCES[s][0] for s in sorted(set(meta[~ham].source))),
                            "images": int((~ham).sum()),
                            **{dx: int(n) for dx, n in meta[~ham].dx.value_counts().items()},
                            "sources": {s: int(n) for s, n in meta[~ham].source.value_counts().items()}}}
           if (~ham).any() else {}),
        "split": f"by lesion_id, stratified by dx, 70/15/15, seed {run.cfg.seed}",
        "image_size": _image_size(meta[ham].path.iloc[0]),
    }


def training_section(run: ScoredRun) -> dict:
    """How it was trained: the config, best epoch, time, throughput, machine and command."""
    return {
        "config": {k: v for k, v in asdict(run.cfg).items() if k not in ("data", "out", "weights")},
        "best_epoch": run.state.best,
        "train_seconds": round(run.state.seconds, 1),
        "throughput": throughput(run.state.history),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "command": run.cfg.command,
        **({"soup": json.loads(soup.read_text())} if (soup := run.out / SOUP_FILE).is_file() else {}),
    }


def operating_point_section(run: ScoredRun) -> dict:
    """The malignant threshold, chosen on validation for >= 90% sensitivity, and what it gives on test."""
    point = operating_point(run.labels["val"], run.probs["val"], sensitivity=0.90)
    test_point = at_threshold(run.labels["test"], run.probs["test"], point["threshold"])
    return {
        "threshold": point["threshold"],
        "chosen_on": "chosen on the validation split for >= 90% sensitivity to mel + bcc + akiec",
        "val_sensitivity": point.get("sensitivity"),
        "val_specificity": point.get("specificity"),
        "test_sensitivity": test_point["sensitivity"],
        "test_specificity": test_point["specificity"],
    }


def uncertainty_section(run: ScoredRun) -> dict:
    """'Uncertain' below a calibrated top probability, and how right the model is on either side of it."""
    return {
        "threshold": DEFAULT_UNCERTAIN_BELOW,
        "rule": "uncertain when the calibrated top probability is below the threshold (more likely wrong than right)",
        **{name: group_accuracy(run.labels[name], run.probs[name], DEFAULT_UNCERTAIN_BELOW)
           for name in ("val", "test")},
    }


def finish_run(run_dir: str | Path, recipes: list[str | Path] = (), probe: str | Path | None = None) -> dict:
    """Score the best weights on validation and (once) test, calibrate, export, then the card's sections.

    Also ``python -m training evaluate RUN [--recipes OTHER ...]``: it reads everything from the
    run folder; ``recipes`` (earlier run folders or model_card.json files) fill the card's recipe table,
    ``probe`` (a ``python -m training probe`` result) its colour-preprocessing table.
    """
    network, run = score_run(run_dir)
    out, cfg, state = run.out, run.cfg, run.state
    for name, p in run.probs.items():
        np.save(out / f"{name}_probs.npy", p)
    point = operating_point_section(run)
    results = split_results(run, point["threshold"], cfg.resamples)
    # the flags and every figure below come from the exported runtime itself, so they match what ships
    source = {"weights_sha256": sha256(out / "best.weights.h5"), "temperature": run.temperature}
    runtime, exported = export_unless_current(calibrated(network, run.temperature), out / "export",
                                              run.inputs["test"][:8], source)
    outputs = {name: runtime.run(run.inputs[name]) for name in run.arrays}
    shown = draw_figures(run, results, outputs["test"].features, runtime.head_kernel)
    test_ids = run.meta[run.meta.split == "test"].image_id.to_numpy()
    results["test"]["misclassified_shown"] = [str(test_ids[i]) for i in shown]
    (out / "metrics.json").write_text(json.dumps(results, indent=2))

    card = {
        **model_section(run),
        "data": data_section(run),
        "training": training_section(run),
        "metrics": {split: {k: v for k, v in m.items() if k not in ("confusion_matrix", "misclassified_shown")}
                    for split, m in results.items()},
        "confusion_matrix_test": results["test"]["confusion_matrix"],
        "malignant_operating_point": point,
        "uncertainty": uncertainty_section(run),
        "not_dermoscopic": calibrate_not_dermoscopic(runtime, run.inputs,
                                                     {name: o.features for name, o in outputs.items()}),
        "ablation": ablation(cfg, state.best, [s for c in recipes for s in recipe_summaries(c)], state.seconds),
        "test_time_augmentation": flip_tta(network, run),  # measured on validation only
        "robustness": {name: robustness(runtime_predict(runtime), run.arrays[name], run.labels[name],
                                        plain=outputs[name].probs) for name in run.arrays},
        "external_validation": score_external(runtime.predict, validation_sets(cfg.data, cfg.seed), cfg.resamples)[0],
        "colour_probe": read_probe(probe) if probe else None,
        **exported,
    }
    write_card(out / "export", card, figures_from=out)
    print(json.dumps({s: {k: round(results[s][k], 4) for k in ("accuracy", "balanced_accuracy", "macro_auc")}
                      for s in results}, indent=2))
    return card
