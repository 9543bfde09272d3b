"""Fine-tune ImageNet MobileNetV2 on HAM10000: the head on frozen features, then the network.

Everything a run makes lives in its folder: the lesion-grouped split, a state file, Keras
backups for resuming mid-phase, the best weights (chosen on validation balanced accuracy),
test metrics and figures (computed once, at the end), and the exported model files.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from model.architecture import LOGITS_LAYER
from model.labels import CLASSES
from model.preprocessing import scale

from .augment import (
    DETAIL,
    box_fractions,
    colour_jitter,
    lesion_crop,
    random_cast,
    random_degrade,
    random_levels,
    random_vignette,
    random_zoom_crop,
)
from .averaging import load_average
from .config import BALANCE, Config, epoch_weights
from .data import HAM_SOURCE, SPLITS, load_arrays, read_bcn_train, read_isic2017_train, read_split
from .distill import (
    TEACHER_VAL_FILE,
    cached_teacher_probs,
    check_members,
    members,
    online_teacher,
    teacher_divergence,
)
from .distribute import check_batch, is_chief, make_strategy, remove_worker_dir, val_predictor, write_dir
from .evaluate import (
    classification_metrics,
)
from .finish import finish_run
from .mixing import mixer
from .network import build_network
from .sampling import balanced_dataset, drawn_labels
from .state import RunState
from .warm_start import init_weights


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
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float32)
    offset = tau * np.log(np.maximum(counts, 1) / counts.sum()).astype(np.float32)
    crossentropy = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)

    def loss(y_true, logits):
        return crossentropy(y_true, logits + offset)

    return loss


def trained_labels(labels: np.ndarray, cfg: Config, sources: np.ndarray | None = None) -> np.ndarray:
    """The labels as the loss meets them: the training split's, or one of each class when sampling balances them.

    With ``--extra-target teacher`` the extra sources' labels are not trained on, so only HAM10000's
    (``sources``) set the class balance.
    """
    if sources is not None:
        labels = labels[~teacher_only(cfg, sources)]
    return drawn_labels(labels) if cfg.sampling == "balanced" else labels


def teacher_only(cfg: Config, sources: np.ndarray) -> np.ndarray:
    """Which training images learn the teacher's answer alone: the extra sources' with ``--extra-target teacher``."""
    return (np.asarray(sources) != HAM_SOURCE) & (bool(cfg.teacher) and cfg.extra_target == "teacher")


def _datasets(arrays, labels, cfg: Config, boxes: np.ndarray | None = None, teacher: np.ndarray | None = None,
              sources: np.ndarray | None = None, teach=None):
    """The augmented training set and plain val/test sets. ``boxes``: the training images' lesion
    boxes (``augment.box_fractions``), needed when ``cfg.lesion_crop`` is on; ``teacher``: (N, views,
    classes) soft targets (``distill.teacher_probs``), blended into the label by ``cfg.distill`` (the
    teacher's answer alone for ``teacher_only`` images);
    ``sources``: each training image's source, for ``cfg.sampling`` balanced (an endless set then) and
    ``cfg.extra_target``; ``teach``: a batch map giving the targets the teacher's answers for the
    batch as augmented and mixed (``distill.online_teacher``), instead of ``teacher``."""
    rotation = keras.layers.RandomRotation(0.5, fill_mode="reflect", seed=cfg.training_seed) if cfg.rotate else None
    if cfg.lesion_crop > 0 and boxes is None:
        raise ValueError("--lesion-crop needs the training images' lesion boxes")

    def augment(image, target, weight, box=None, soft=None, share=None):
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
            target = share * tf.gather(soft, 2 * up_down + left_right) + (1 - share) * target
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
        per_class = class_weights(trained_labels(labels["train"], cfg, sources)).astype(np.float32)
    else:
        per_class = np.ones(len(CLASSES), np.float32)
    if teacher is not None and cfg.lesion_crop > 0:
        raise ValueError("--teacher with --lesion-crop needs --teach online: offline, the teacher answered for "
                         "whole images")
    weight = per_class[labels["train"]]
    share = np.full(len(weight), cfg.distill, np.float32)
    if teacher is not None and sources is not None:  # images without a trusted label: their expected class weight
        alone = teacher_only(cfg, sources)
        weight[alone], share[alone] = teacher[alone].mean(axis=1) @ per_class, 1.0
    elements = ((arrays["train"], onehot[labels["train"]], weight)
                + ((boxes.astype(np.float32),) if cfg.lesion_crop > 0 else ())
                + ((teacher.astype(np.float32), share) if teacher is not None else ()))
    if cfg.sampling == "balanced":
        if sources is None:
            raise ValueError("--sampling balanced needs each training image's source")
        train = balanced_dataset(elements, labels["train"], np.asarray(sources), cfg.training_seed)
    else:
        train = (tf.data.Dataset.from_tensor_slices(elements)
                 .shuffle(len(arrays["train"]), seed=cfg.training_seed, reshuffle_each_iteration=True))
    train = (
        train.map(augment if teacher is None else lambda x, y, w, t, d: augment(x, y, w, soft=t, share=d),
                  num_parallel_calls=tf.data.AUTOTUNE)
        .batch(cfg.batch_size)
    )
    mix = mixer(cfg.mix, cfg.mix_share, cfg.training_seed)
    if mix is not None:
        train = train.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    if teach is not None:  # one batch at a time: the members' interpreters already use every core
        train = train.map(teach)
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
                    train_images: int, predict=None, teacher_val: np.ndarray | None = None):
    """``teacher_val``: the teacher's answers for the validation images; given, the epoch kept is
    the one closest to them (``distill.teacher_divergence``), not the one of best balanced accuracy."""
    predict = predict or (lambda dataset: network.predict(dataset, verbose=0))

    def better(record: dict, best: dict | None) -> bool:
        if best is None:
            return True
        if teacher_val is not None:
            return record["val_teacher_kl"] < best.get("val_teacher_kl", np.inf)
        return record["val_balanced_accuracy"] > best["val_balanced_accuracy"]

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
                "train_images": train_images,  # per epoch: fixed by --sampling balanced, else the split's
                "train_seconds": round(fitted, 1),
                "train_images_per_second": round(train_images / fitted, 1),
                **({"val_teacher_kl": teacher_divergence(teacher_val, probs)} if teacher_val is not None else {}),
            }
            state.history = [
                h for h in state.history if (h["phase"], h["epoch"]) != (phase, epoch + 1)
            ] + [record]
            state.seconds += time.time() - self.started
            if better(record, state.best):
                state.best = record
                network.save_weights(out / "best.weights.h5")
            print(
                f"[{phase} {epoch + 1}] loss {record['loss']:.4f} val_loss {val_loss:.4f} "
                f"val_bacc {record['val_balanced_accuracy']:.4f} val_auc {record['val_macro_auc']:.4f} "
                + (f"val_teacher_kl {record['val_teacher_kl']:.4f} " if teacher_val is not None else "")
                + f"(best {state.best['val_balanced_accuracy']:.4f} at {state.best['phase']} {state.best['epoch']})",
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
    names = [layer.name for layer in network.layers]
    start = names.index(first_trainable) if first_trainable else names.index("avg_pool")
    for i, layer in enumerate(network.layers):
        frozen_bn = isinstance(layer, keras.layers.BatchNormalization) and not train_bn
        layer.trainable = i >= start and not frozen_bn


def train(cfg: Config) -> dict:
    """Run (or resume) training; returns the model card of the exported model ({} on a non-chief worker)."""
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
        meta = read_split(cfg.data, cfg.seed, cfg.limit).assign(source=HAM_SOURCE)
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
    teacher = teacher_val = teach = None
    if cfg.teacher:
        ham = meta[meta.source == HAM_SOURCE] if "source" in meta else meta
        check_members(cfg.teacher, cfg.size, cfg.seed, {n: int((ham.split == n).sum()) for n in SPLITS})
        if cfg.select == "teacher":  # the validation images as they are: the first of the views
            teacher_val = cached_teacher_probs(cfg.teacher, arrays["val"], out, TEACHER_VAL_FILE, flips=1)[:, 0]
        if cfg.teach == "online":
            teach = online_teacher(cfg.teacher, cfg.distill)
            print(f"teacher: {len(members(cfg.teacher))} members answering for each training batch as augmented",
                  flush=True)
        else:
            teacher = cached_teacher_probs(cfg.teacher, arrays["train"], out)
            agree = float((teacher[:, 0].argmax(1) == labels["train"]).mean())
            print(f"teacher: {len(teacher)} training images x {teacher.shape[1]} flips; its top class is the label "
                  f"for {agree:.1%}", flush=True)
    train_meta = meta[meta.split == "train"]
    sources = train_meta.source.to_numpy() if "source" in train_meta else np.full(len(train_meta), HAM_SOURCE)
    train_set, plain_sets = _datasets(arrays, labels, cfg, boxes, teacher, sources, teach)
    # balanced sampling draws as many images an epoch as HAM10000's training split holds, whatever the extra sources
    epoch_images = int((sources == HAM_SOURCE).sum()) if cfg.sampling == "balanced" else len(arrays["train"])

    with strategy.scope():  # variables made here are mirrored across the replicas
        network = build_network(cfg.size, cfg.weights, cfg.dropout, cfg.colour)
        if cfg.init:  # a resumed phase then restores its own backup over these
            network.load_weights(init_weights(cfg.init, asdict(cfg), meta))
        if cfg.balance == "logit_adjust":  # trained on logits, served with its softmax (same weights)
            trainee = keras.Model(network.input, network.get_layer(LOGITS_LAYER).output)
            loss = logit_adjusted_loss(trained_labels(labels["train"], cfg, sources), cfg.label_smoothing)
        else:
            trainee = network
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
    steps = int(np.ceil(epoch_images / cfg.batch_size))
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
                                         epoch_images, val_predictor(network, strategy), teacher_val))
        if phase == "finetune" and (cfg.keep_epochs or cfg.average_from):
            def keep(epoch, logs):  # the weights as served (the averages, with --ema)
                if cfg.keep_epochs or epoch + 1 >= cfg.average_from:
                    network.save_weights(out / epoch_weights(epoch + 1))

            callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=keep))
        trainee.fit(
            train_set,
            epochs=epochs,
            steps_per_epoch=steps if cfg.sampling == "balanced" else None,
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


