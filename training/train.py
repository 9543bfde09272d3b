"""Fine-tune ImageNet MobileNetV2 on HAM10000: the head on frozen features, then the network.

Everything a run makes lives in its folder: the lesion-grouped split, a state file, Keras
backups for resuming mid-phase, the best weights (chosen on validation balanced accuracy),
test metrics and figures (computed once, at the end), and the exported model files.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model.architecture import LOGITS_LAYER
from model.labels import CLASSES
from model.preprocessing import scale

from .augment import DETAIL, box_fractions
from .config import BALANCE, SOUP_FILE, Config, before_options, epoch_weights
from .data import EXTRA_SOURCES, SPLITS, load_arrays, read_bcn_train, read_isic2017_train, read_split
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


class RunState:
    """Progress of a run, saved after every epoch so an interrupted run resumes."""

    def __init__(self, path: Path):
        self.path = path
        data = json.loads(path.read_text()) if path.is_file() else {}
        self.history: list[dict] = data.get("history", [])
        self.phases_done: list[str] = data.get("phases_done", [])
        self.best: dict | None = data.get("best")
        self.seconds: float = data.get("seconds", 0.0)

    def save(self) -> None:
        data = {
            "history": self.history,
            "phases_done": self.phases_done,
            "best": self.best,
            "seconds": self.seconds,
        }
        self.path.write_text(json.dumps(data, indent=2))


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Inverse-frequency weights (mean 1 over samples), so each class counts equally."""
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(float)
    weights = np.where(counts > 0, len(labels) / (len(CLASSES) * np.maximum(counts, 1)), 0.0)
    return weights


def logit_adjusted_loss(labels: np.ndarray, label_smoothing: float = 0.0, tau: float = 1.0):
    """Cross-entropy on logits + tau * log(prior) (Menon et al. 2021, "Long-tail learning via logit adjustment").

    The offset is used in training only, so the bare logits the model serves rank classes as a
    balanced-error classifier would, without the noisy gradients of large per-class weights.
    """
    import keras

    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float32)
    offset = tau * np.log(np.maximum(counts, 1) / counts.sum()).astype(np.float32)
    crossentropy = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)

    def loss(y_true, logits):
        return crossentropy(y_true, logits + offset)

    return loss


def _datasets(arrays, labels, cfg: Config, boxes: np.ndarray | None = None, teacher: np.ndarray | None = None):
    """The augmented training set and plain val/test sets. ``boxes``: the training images' lesion
    boxes (``augment.box_fractions``), needed when ``cfg.lesion_crop`` is on; ``teacher``: (N, views,
    classes) soft targets (``distill.teacher_probs``), blended into the label by ``cfg.distill``."""
    import keras
    import tensorflow as tf

    from .augment import colour_jitter, lesion_crop, random_degrade, random_zoom_crop
    from .mixing import mixer
    from .shifts import random_cast, random_levels, random_vignette

    rotation = keras.layers.RandomRotation(0.5, fill_mode="reflect", seed=cfg.training_seed) if cfg.rotate else None
    if cfg.lesion_crop > 0 and boxes is None:
        raise ValueError("--lesion-crop needs the training images' lesion boxes")

    def augment(image, target, weight, box=None, soft=None):
        x = tf.cast(image, tf.float32) / 255.0
        if box is not None:  # crop first: rotating would move the box
            x = lesion_crop(x, box, cfg.lesion_crop, cfg.size)
        if rotation is not None:
            x = rotation(x, training=True)
        if soft is None:
            x = tf.image.random_flip_left_right(x)
            x = tf.image.random_flip_up_down(x)
        else:  # the teacher answered for each flip: the target is its answer for the flip drawn
            left_right = tf.random.uniform([], 0, 2, tf.int32)
            up_down = tf.random.uniform([], 0, 2, tf.int32)
            x = tf.cond(left_right > 0, lambda: tf.image.flip_left_right(x), lambda: x)
            x = tf.cond(up_down > 0, lambda: tf.image.flip_up_down(x), lambda: x)
            target = cfg.distill * tf.gather(soft, 2 * up_down + left_right) + (1 - cfg.distill) * target
        if box is None:
            x = random_zoom_crop(x, cfg.size)
        if cfg.degrade > 0:
            x = random_degrade(x, cfg.degrade)
        x = colour_jitter(x)
        if cfg.cast > 0:
            x = random_cast(x, cfg.cast)
        if cfg.levels > 0:
            x = random_levels(x, cfg.levels)
        if cfg.vignette > 0:
            x = random_vignette(x, cfg.vignette)
        return scale(tf.clip_by_value(x, 0.0, 1.0) * 255.0), target, weight

    def plain(image):
        return scale(tf.cast(image, tf.float32))

    onehot = np.eye(len(CLASSES), dtype=np.float32)
    if cfg.balance not in BALANCE:
        raise ValueError(f"balance must be one of {BALANCE}, not {cfg.balance!r}")
    if cfg.balance == "weights":
        per_class = class_weights(labels["train"]).astype(np.float32)
    else:
        per_class = np.ones(len(CLASSES), np.float32)
    if teacher is not None and cfg.lesion_crop > 0:
        raise ValueError("--teacher with --lesion-crop is not supported: the teacher answered for whole images")
    train = (
        tf.data.Dataset.from_tensor_slices(
            (arrays["train"], onehot[labels["train"]], per_class[labels["train"]])
            + ((boxes.astype(np.float32),) if cfg.lesion_crop > 0 else ())
            + ((teacher.astype(np.float32),) if teacher is not None else ())
        )
        .shuffle(len(arrays["train"]), seed=cfg.training_seed, reshuffle_each_iteration=True)
        .map(augment if teacher is None else lambda x, y, w, t: augment(x, y, w, soft=t),
             num_parallel_calls=tf.data.AUTOTUNE)
        .batch(cfg.batch_size)
    )
    mix = mixer(cfg.mix, cfg.mix_share, cfg.training_seed)
    if mix is not None:
        train = train.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    train = train.prefetch(tf.data.AUTOTUNE)
    plain_sets = {
        name: tf.data.Dataset.from_tensor_slices(arrays[name])
        .map(plain, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(64)
        .prefetch(tf.data.AUTOTUNE)
        for name in SPLITS
    }
    return train, plain_sets


def _epoch_callback(state: RunState, phase: str, network, val_set, val_labels, out: Path, patience: int | None,
                    train_images: int, predict=None):
    import keras

    predict = predict or (lambda dataset: network.predict(dataset, verbose=0))

    class EpochEval(keras.callbacks.Callback):
        """Scores the validation split, keeps the best weights, stops early, saves state."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.time()

        def on_epoch_end(self, epoch, logs=None):
            fitted = time.time() - self.started  # training only: the validation pass below is not counted
            probs = predict(val_set)
            metrics = classification_metrics(val_labels, probs)
            val_loss = float(-np.log(np.clip(probs[np.arange(len(probs)), val_labels], 1e-7, 1)).mean())
            record = {
                "phase": phase,
                "epoch": epoch + 1,
                "loss": float(logs["loss"]),
                "val_loss": val_loss,
                "val_accuracy": metrics["accuracy"],
                "val_balanced_accuracy": metrics["balanced_accuracy"],
                "val_macro_auc": metrics["macro_auc"],
                "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                "train_seconds": round(fitted, 1),
                "train_images_per_second": round(train_images / fitted, 1),
            }
            state.history = [
                h for h in state.history if (h["phase"], h["epoch"]) != (phase, epoch + 1)
            ] + [record]
            state.seconds += time.time() - self.started
            if state.best is None or record["val_balanced_accuracy"] > state.best["val_balanced_accuracy"]:
                state.best = record
                network.save_weights(out / "best.weights.h5")
            print(
                f"[{phase} {epoch + 1}] loss {record['loss']:.4f} val_loss {val_loss:.4f} "
                f"val_bacc {record['val_balanced_accuracy']:.4f} val_auc {record['val_macro_auc']:.4f} "
                f"(best {state.best['val_balanced_accuracy']:.4f} at {state.best['phase']} {state.best['epoch']})",
                flush=True,
            )
            state.save()
            phase_epochs = [h["epoch"] for h in state.history if h["phase"] == phase]
            best_epoch = state.best["epoch"] if state.best["phase"] == phase else 0
            if patience is not None and max(phase_epochs) - best_epoch >= patience:
                print(f"early stop: no validation gain for {patience} epochs", flush=True)
                self.model.stop_training = True

    return EpochEval()


def _set_trainable(network, first_trainable: str | None, train_bn: bool = False) -> None:
    """Freeze everything before ``first_trainable`` (None: the whole base).

    Batch norm stays frozen (ImageNet statistics, inference mode) unless ``train_bn``: then the
    trained part also learns its scales and moves its statistics towards dermoscopy's.
    """
    import keras

    names = [layer.name for layer in network.layers]
    start = names.index(first_trainable) if first_trainable else names.index("avg_pool")
    for i, layer in enumerate(network.layers):
        frozen_bn = isinstance(layer, keras.layers.BatchNormalization) and not train_bn
        layer.trainable = i >= start and not frozen_bn


def train(cfg: Config) -> dict:
    """Run (or resume) training; returns the model card of the exported model ({} on a non-chief worker)."""
    import keras

    from .distribute import check_batch, is_chief, make_strategy, remove_worker_dir, val_predictor, write_dir
    from .network import build_network

    strategy = make_strategy(cfg.strategy)  # before any other TensorFlow op (multi-worker needs it)
    check_batch(cfg.batch_size, strategy)
    out = write_dir(Path(cfg.out), strategy)  # non-chief workers: a temporary folder
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.training_seed)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    state = RunState(out / "state.json")

    split_path = out / "split.csv"
    if split_path.is_file():
        meta = pd.read_csv(split_path)
        print(f"resuming with the split saved in {split_path}")
    else:
        meta = read_split(cfg.data, cfg.seed, cfg.limit).assign(source="ham10000")
        if cfg.extra:
            extra = read_isic2017_train(cfg.extra)
            if cfg.limit:
                extra = extra.sample(n=min(cfg.limit, len(extra)), random_state=cfg.seed)
            meta = pd.concat([meta, extra], ignore_index=True)
        if cfg.bcn:
            bcn = read_bcn_train(cfg.bcn)
            if cfg.limit:
                bcn = bcn.sample(n=min(cfg.limit, len(bcn)), random_state=cfg.seed)
            meta = pd.concat([meta, bcn], ignore_index=True)
        meta.to_csv(split_path, index=False)
    for name in SPLITS:
        part = meta[meta.split == name]
        if "source" in part and part.source.nunique() > 1:
            print(f"{name}: " + ", ".join(f"{n} images from {s}" for s, n in part.source.value_counts().items()))
        print(f"{name}: {len(part)} images of {part.lesion_id.nunique()} lesions; "
              + ", ".join(f"{c} {n}" for c, n in part.dx.value_counts().items()))

    arrays, labels = {}, {}
    for name in SPLITS:
        part = meta[meta.split == name]
        size = cfg.size
        if name == "train" and cfg.lesion_crop > 0:  # zoomed crops keep real detail
            size = tuple(int(round(v * DETAIL)) for v in cfg.size)
        arrays[name] = load_arrays(list(part.path), size, cfg.workers, desc=f"loading {name}")
        labels[name] = part.label.to_numpy()
    boxes = box_fractions(meta[meta.split == "train"], cfg.data) if cfg.lesion_crop > 0 else None
    teacher = None
    if cfg.teacher:
        from .distill import cached_teacher_probs, check_members

        ham = meta[meta.source == "ham10000"] if "source" in meta else meta
        check_members(cfg.teacher, cfg.size, cfg.seed, {n: int((ham.split == n).sum()) for n in SPLITS})
        teacher = cached_teacher_probs(cfg.teacher, arrays["train"], out)
        agree = float((teacher[:, 0].argmax(1) == labels["train"]).mean())
        print(f"teacher: {len(teacher)} training images x {teacher.shape[1]} flips; its top class is the label "
              f"for {agree:.1%}", flush=True)
    train_set, plain_sets = _datasets(arrays, labels, cfg, boxes, teacher)

    with strategy.scope():  # variables made here are mirrored across the replicas
        network = build_network(cfg.size, cfg.weights, cfg.dropout, cfg.colour)
        if cfg.balance == "logit_adjust":  # trained on logits, served with its softmax (same weights)
            trainee = keras.Model(network.input, network.get_layer(LOGITS_LAYER).output)
            loss = logit_adjusted_loss(labels["train"], cfg.label_smoothing)
        else:
            trainee = network
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
    steps = int(np.ceil(len(arrays["train"]) / cfg.batch_size))
    phases = [
        ("head", None, cfg.head_epochs, cfg.head_lr, None, 0),
        ("finetune", cfg.finetune_from, cfg.finetune_epochs, cfg.finetune_lr, cfg.patience, cfg.warmup_epochs),
    ]
    for phase, first, epochs, lr, patience, warmup in phases:
        if phase in state.phases_done:
            network.load_weights(out / f"{phase}.weights.h5")
            continue
        if epochs <= 0:
            continue
        _set_trainable(network, first, cfg.train_bn and phase == "finetune")
        warmup = min(warmup, epochs - 1)
        schedule = keras.optimizers.schedules.CosineDecay(
            lr / 100 if warmup else lr, decay_steps=(epochs - warmup) * steps, alpha=0.02,
            warmup_target=lr if warmup else None, warmup_steps=warmup * steps,
        )
        ema = cfg.ema if phase == "finetune" and cfg.ema > 0 else None
        with strategy.scope():  # the optimizer's variables too
            trainee.compile(
                optimizer=keras.optimizers.Adam(schedule, use_ema=ema is not None, ema_momentum=ema or 0.99),
                loss=loss,
            )
        print(f"phase {phase}: {sum(np.prod(w.shape) for w in network.trainable_weights):,} "
              f"trainable parameters, up to {epochs} epochs", flush=True)
        # BackupAndRestore first: it must save the raw weights, before SwapEMAWeights puts the
        # averages in the model for scoring and keeping the best.
        callbacks = [keras.callbacks.BackupAndRestore(str(out / f"backup_{phase}"))]
        if ema is not None:
            callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
        callbacks.append(_epoch_callback(state, phase, network, plain_sets["val"], labels["val"], out, patience,
                                         len(arrays["train"]), val_predictor(network, strategy)))
        if phase == "finetune" and (cfg.keep_epochs or cfg.average_from):
            def keep(epoch, logs):  # the weights as served (the averages, with --ema)
                if cfg.keep_epochs or epoch + 1 >= cfg.average_from:
                    network.save_weights(out / epoch_weights(epoch + 1))

            callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=keep))
        trainee.fit(
            train_set,
            epochs=epochs,
            verbose=1 if sys.stdout.isatty() else 2,
            callbacks=callbacks,
        )
        network.save_weights(out / f"{phase}.weights.h5")
        state.phases_done.append(phase)
        state.save()

    if cfg.average_from and "average" not in state.phases_done and is_chief(strategy):
        average_epochs(network, out, state, cfg.average_from, plain_sets["val"], labels["val"])

    if not is_chief(strategy):  # the chief scores, exports and writes the card, once
        remove_worker_dir(Path(cfg.out), strategy)
        return {}
    return finish_run(out)


def average_epochs(network, out: Path, state: RunState, first: int, val_set, val_labels) -> None:
    """Make the uniform average of phase 2's epochs ``first``..last the run's best weights, scored on
    validation as an epoch is (its figure is reported, it picked nothing)."""
    from .averaging import load_average

    epochs = sorted(h["epoch"] for h in state.history if h["phase"] == "finetune" and h["epoch"] >= first)
    if not epochs:
        raise RuntimeError(f"phase 2 stopped before epoch {first}: nothing to average (lower --average-from)")
    load_average(network, [out / epoch_weights(e) for e in epochs])
    network.save_weights(out / "best.weights.h5")
    metrics = classification_metrics(val_labels, network.predict(val_set, verbose=0))
    state.best = {"phase": "average", "epoch": epochs[-1], "averaged_epochs": epochs,
                  "val_accuracy": metrics["accuracy"], "val_balanced_accuracy": metrics["balanced_accuracy"],
                  "val_macro_auc": metrics["macro_auc"]}
    state.phases_done.append("average")
    state.save()
    print(f"[average of finetune {epochs[0]}-{epochs[-1]}] val_bacc {metrics['balanced_accuracy']:.4f} "
          f"val_auc {metrics['macro_auc']:.4f}", flush=True)


def _image_size(path: str) -> str:
    """The stored size of the data set's images ("400x300 px"), which the recipe's crops draw detail from."""
    from PIL import Image

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
    from model.metrics import fit_temperature, temper

    from .network import build_network

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
    from model.metrics import temper

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


def split_results(run: ScoredRun, threshold: float) -> dict:
    """Each split's metrics, calibration error and lesion-bootstrap intervals (at the operating point)."""
    from model.metrics import expected_calibration_error

    from .intervals import split_intervals

    results = {}
    for name in ("val", "test"):
        results[name] = classification_metrics(run.labels[name], run.probs[name])
        results[name]["ece_uncalibrated"] = expected_calibration_error(run.labels[name], run.raw[name])
        results[name]["ece"] = expected_calibration_error(run.labels[name], run.probs[name])
        lesions = run.meta[run.meta.split == name].lesion_id.to_numpy()
        results[name]["ci95"] = split_intervals(run.labels[name], run.probs[name], lesions, threshold)
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
    ham = meta.source.eq("ham10000") if "source" in meta else pd.Series(True, index=meta.index)
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
    from model.card import DEFAULT_UNCERTAIN_BELOW
    from model.metrics import group_accuracy

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
    from .card import write_card
    from .export import export_model
    from .external import score as score_external
    from .external import validation_sets
    from .network import calibrated
    from .not_dermoscopic import calibrate as calibrate_not_dermoscopic
    from .probe import read_results as read_probe
    from .recipes import ablation, recipe_summaries
    from .shifts import robustness, runtime_predict

    network, run = score_run(run_dir)
    out, cfg, state = run.out, run.cfg, run.state
    for name, p in run.probs.items():
        np.save(out / f"{name}_probs.npy", p)
    point = operating_point_section(run)
    results = split_results(run, point["threshold"])
    # the flags and every figure below come from the exported runtime itself, so they match what ships
    runtime, exported = export_model(calibrated(network, run.temperature), out / "export", run.inputs["test"][:8])
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
        "external_validation": score_external(runtime.predict, validation_sets(cfg.data, cfg.seed))[0],
        "colour_probe": read_probe(probe) if probe else None,
        **exported,
    }
    write_card(out / "export", card, figures_from=out)
    print(json.dumps({s: {k: round(results[s][k], 4) for k in ("accuracy", "balanced_accuracy", "macro_auc")}
                      for s in results}, indent=2))
    return card
