"""Sanity checks of the served maps (Adebayo et al., NeurIPS 2018, "Sanity checks for saliency maps").

A map that shows the model's reasons must change when the model is destroyed; one that barely
changes shows the image (or the middle of the picture), whatever the model learnt. Two checks on a
class-balanced sample of the validation and test splits, each map compared with the trained model's
map of the same class (the trained model's top class) by rank correlation and SSIM
(``explain.quality.map_similarity``):

- Cascading model-parameter randomisation: the weights are randomised block by block from the head
  down (``STAGES``), each tensor's values shuffled: the learnt arrangement is gone and each tensor's
  scale is kept (Quantus's randomiser also permutes). Grad-CAM is recomputed after every block, LIME
  (a thousand model calls a map) after ``LIME_STAGES``. A map can go flat (the closed form's ReLU of a
  sum that a random head makes negative everywhere): its share is counted.
- Label randomisation: a head fitted on the frozen features of training images with their labels
  shuffled, its maps compared with those of the same head fitted the same way to the true labels
  (whose maps are in turn compared with the trained model's, the control).

The served Grad-CAM (``explain.gradcam.cam_map`` with the served method) needs the class's gradients:
``KerasClassifier`` gives them from TensorFlow for the trained and every randomised network alike, so
the comparison holds everything but the weights fixed (how far that map is from the served runtime's,
float16 gradients and all, is reported as its own row). LIME runs as served, on the shipped LiteRT
runtime for the trained model, ``HeadSwapped`` for a new head (the same runtime's features), and a
LiteRT export of each randomised network below the head.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.linear_model import LogisticRegression

from explain.gradcam import METHODS, SERVED, cam_map
from explain.lime import SEGMENTATION, explain_lime
from explain.quality import centre_prior, map_similarity
from model.card import read_json
from model.metrics import classification_metrics
from model.preprocessing import prepare_batch
from model.runtime import CAM_LAYERS, KERAS_FILE, Classifier, Output, load_classifier

from ..cam_export import cam_function
from ..card import record
from ..data import card_split, load_arrays
from ..export import write_litert
from ..network import head_weights, load_network, serving_model
from .cams import ensure_gradient_model
from .explanations import balanced_sample, summarise

IMAGES_PER_SPLIT = 14  # 2 of each class: 22 min on 2 quiet cores, mostly LIME at 1000 samples, 7 times an image
TRAIN_IMAGES = 1400  # training images the label-randomisation heads are fitted on (200 of each class where it has them)
HEAD_C = 10.0  # inverse L2 penalty of the refitted heads: weak enough for a linear head to learn shuffled labels
# top-down: the head, the last 1x1 convolution, the 16 inverted-residual blocks, the first block and the stem
STAGES = ("logits", "Conv_1", *(f"block_{k}" for k in range(16, 0, -1)), "expanded_conv", "Conv1")
LIME_STAGES = ("logits", "block_13", "Conv1")  # the head; down to the block the served CAM reads; all of it
SIMILARITY = ("spearman", "ssim", "flat")  # flat: the share of maps with no ranking left (a constant map)
# each map is compared with the trained model's, but the shuffled-label head's with the head fitted the same way
# to the true labels (Adebayo et al.'s comparison: only the labels differ); that head's with the trained one's
AGAINST = {"labels shuffled": "labels refit"}
CEILING = 0.5  # the rule's bound on the rank correlation of a destroyed model's map with the trained one's


def block_of(layer: str) -> str | None:
    """The ``STAGES`` entry a MobileNetV2 layer belongs to (None: a layer outside the network's blocks)."""
    if layer == "logits":
        return layer
    if layer.startswith("block_"):
        return "_".join(layer.split("_")[:2])
    if layer.startswith("Conv_1"):
        return "Conv_1"
    if layer.startswith("expanded_conv"):
        return "expanded_conv"
    return "Conv1" if layer in ("Conv1", "bn_Conv1") else None


def shuffle_block(network, block: str, rng: np.random.Generator) -> int:
    """Shuffle the values of every weight tensor of ``block``'s layers, in place; how many tensors it shuffled."""
    shuffled = 0
    for layer in network.layers:
        weights = layer.get_weights()
        if block_of(layer.name) == block and weights:
            layer.set_weights([rng.permutation(w.ravel()).reshape(w.shape) for w in weights])
            shuffled += len(weights)
    return shuffled


class KerasClassifier:
    """A Keras network read the way ``explain`` reads the LiteRT runtime: ``run`` gives the probabilities
    and ``out_relu`` features, ``gradients`` each CAM layer's activations and class gradients (TensorFlow's).

    Weights changed in place (``shuffle_block``, ``set_weights``) are read on the next call.
    """

    has_gradients = True

    def __init__(self, network, layers: tuple[str, ...] = CAM_LAYERS):
        self.network = network
        self.input_size: tuple[int, int] = tuple(int(d) for d in network.input.shape[1:3])
        serving = serving_model(network)
        self._serving = tf.function(lambda batch: serving(batch, training=False))
        self._cam, _ = cam_function(network, layers, builtin=False)
        self._last = None

    @property
    def head_kernel(self) -> np.ndarray:
        return self.network.get_layer("logits").get_weights()[0]

    def run(self, batch: np.ndarray) -> Output:
        probs, features = self._serving(np.asarray(batch, np.float32))
        return Output(probs.numpy(), features.numpy())

    def predict_with_features(self, images) -> Output:
        return self.run(prepare_batch(images, self.input_size))

    def gradients(self, inputs: np.ndarray, index: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Kept until ``forget``: the candidates that read gradients share one backward pass an image."""
        key = (inputs.tobytes(), index)
        if self._last is None or self._last[0] != key:
            out = self._cam(np.asarray(inputs[None], np.float32), np.eye(7, dtype=np.float32)[[index]])
            layers = [k.removesuffix("_activations") for k in out if k.endswith("_activations")]
            self._last = key, {layer: (out[f"{layer}_activations"].numpy()[0], out[f"{layer}_gradients"].numpy()[0])
                               for layer in layers}
        return self._last[1]

    def forget(self) -> None:
        """Drop the kept gradients (before the weights change)."""
        self._last = None


class HeadSwapped:
    """The served runtime's features under another dense head: what LIME needs of a refitted or shuffled
    head, without exporting a network whose only change is its last layer."""

    def __init__(self, runtime, kernel: np.ndarray, bias: np.ndarray, temperature: float):
        self.runtime, self.input_size = runtime, runtime.input_size
        self.head_kernel, self.bias, self.temperature = kernel, bias, temperature

    def run(self, batch: np.ndarray) -> Output:
        features = self.runtime.run(batch).features
        logits = (features.mean(axis=(1, 2)) @ self.head_kernel + self.bias) / self.temperature
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        return Output((probs / probs.sum(axis=1, keepdims=True)).astype(np.float32), features)

    def predict_with_features(self, images) -> Output:
        return self.run(prepare_batch(images, self.input_size))


def exported(network, folder: Path) -> Classifier:
    """A LiteRT runtime of ``network`` as ``training.export`` writes the served one."""
    path = folder / f"randomised{len(list(folder.glob('*.tflite')))}.tflite"  # the last runtime may still map its file
    write_litert(serving_model(network), path)
    return Classifier(path, num_threads=2)


def fit_heads(runtime, train: pd.DataFrame, val: pd.DataFrame, seed: int) -> dict:
    """Dense heads fitted on the runtime's pooled features: to the true labels and to shuffled ones.

    Each with its training accuracy (how far it learnt its labels) and its validation balanced
    accuracy (what it learnt that holds beyond them).
    """
    def pooled(part: pd.DataFrame) -> np.ndarray:
        images = load_arrays(list(part.path), runtime.input_size, desc="head features")
        return np.concatenate([runtime.run_uint8(images[i : i + 32]).features.mean(axis=(1, 2))
                               for i in range(0, len(images), 32)])

    x_train, x_val = pooled(train), pooled(val)
    labels = train.label.to_numpy()
    shuffled = np.random.default_rng(seed).permutation(labels)
    heads = {}
    for name, targets in (("labels refit", labels), ("labels shuffled", shuffled)):
        fitted = LogisticRegression(C=HEAD_C, max_iter=5000).fit(x_train, targets)
        kernel = np.zeros((x_train.shape[1], 7), np.float32)  # a class the sample lacks keeps a zero column
        bias = np.full(7, -1e3, np.float32)
        kernel[:, fitted.classes_], bias[fitted.classes_] = fitted.coef_.T, fitted.intercept_
        answers = np.eye(7)[(x_val @ kernel + bias).argmax(axis=1)]
        heads[name] = {"kernel": kernel, "bias": bias, "train_images": len(train), "val_images": len(val),
                       "train_accuracy": float((fitted.predict(x_train) == targets).mean()),
                       "val_balanced_accuracy": classification_metrics(val.label.to_numpy(), answers)[
                           "balanced_accuracy"]}
    return heads


def verdict(summary: dict, variants: list[str], repeat: str) -> bool:
    """The rule of docs/explanations.md: every variant's rank correlation with the trained map, upper end of
    its interval, below ``CEILING`` and below the lower end of the map's own repeat (what "unchanged" reads)."""
    floor = summary[repeat]["ci95"]["spearman"][0]
    return all(summary[v]["ci95"]["spearman"][1] < min(CEILING, floor) for v in variants)


def measure_exported(export_dir: str | Path, data: str | Path, images: int = IMAGES_PER_SPLIT, seed: int = 0,
                     samples: int = 1000, lime_stages: tuple[str, ...] = LIME_STAGES,
                     train_images: int = TRAIN_IMAGES) -> dict:
    """Both checks on ``images`` per split of an exported model; into its card (``sanity_checks``).

    Every Grad-CAM candidate of ``explain.gradcam.METHODS`` is checked (a few model calls a map), so
    the rule that chooses among them can read the checks; LIME with the served segmentation.
    """
    export_dir = Path(export_dir)
    meta = card_split(read_json(export_dir), data, seed)
    ensure_gradient_model(export_dir, meta)  # the served Grad-CAM's, as `cams` writes it
    runtime = load_classifier(export_dir)
    card = runtime.card().to_json()
    network = load_network(export_dir / KERAS_FILE)
    keras_clf = KerasClassifier(network)
    kernel, bias = head_weights(network)
    temperature = float(card.get("temperature", 1.0))
    sample = pd.concat([balanced_sample(meta[meta.split == name], images, seed) for name in ("val", "test")])
    pictures = load_arrays(list(sample.path), runtime.input_size, desc="sanity images")
    inputs = [prepare_batch([p], runtime.input_size)[0] for p in pictures]
    indices = [int(runtime.run(x[None]).probs[0].argmax()) for x in inputs]  # the trained model's answers
    size = runtime.input_size

    def cams(clf) -> list[dict[str, np.ndarray]]:
        """Every candidate's map of each image's class, from one pass (and one gradient pass) an image."""
        out = []
        for x, index in zip(inputs, indices, strict=True):
            features = clf.run(x[None]).features[0]
            out.append({m: cam_map(clf, x, features, index, size, m) for m in METHODS})
            forget = getattr(clf, "forget", None)
            if forget:
                forget()
        return out

    def limes(clf, random_state: int = 0) -> list[np.ndarray]:
        return [explain_lime(clf, p, label=k, num_samples=samples, random_state=random_state).weights
                for p, k in zip(pictures, indices, strict=True)]

    found: dict[str, list[dict[str, np.ndarray]]] = {"trained": cams(keras_clf), "served runtime": cams(runtime)}
    lime: dict[str, list[np.ndarray]] = {"trained": limes(runtime), "seed 1": limes(runtime, random_state=1)}
    heads = fit_heads(runtime, balanced_sample(meta[meta.split == "train"], train_images, seed),
                      balanced_sample(meta[meta.split == "val"], train_images // 4, seed), seed)
    for name, head in heads.items():
        network.get_layer("logits").set_weights([head["kernel"], head["bias"]])
        found[name] = cams(keras_clf)
        lime[name] = limes(HeadSwapped(runtime, head["kernel"], head["bias"], temperature))
    network.get_layer("logits").set_weights([kernel, bias])
    rng = np.random.default_rng(seed)
    shuffled = {}
    with tempfile.TemporaryDirectory() as folder:
        for stage in STAGES:
            shuffled[stage] = shuffle_block(network, stage, rng)
            found[stage] = cams(keras_clf)
            if stage in lime_stages:
                lime[stage] = limes(HeadSwapped(runtime, *head_weights(network), temperature) if stage == "logits"
                                    else exported(network, Path(folder)))
    prior = centre_prior(size)
    rows = []
    variants = [*found, *(v for v in lime if v not in found)]
    for i, row in enumerate(sample.itertuples()):
        where = {"split": row.split, "image_id": row.image_id, "lesion_id": row.lesion_id}
        maps = {v: {**(found[v][i] if v in found else {}), **({"LIME": lime[v][i]} if v in lime else {})}
                for v in variants}
        maps["centre prior"] = dict.fromkeys(maps["trained"], prior)
        for variant, by_map in ((v, m) for v, m in maps.items() if v != "trained"):
            reference = maps[AGAINST.get(variant, "trained")]
            rows += [{**where, "map": m, "method": variant, **map_similarity(reference[m], other)}
                     for m, other in by_map.items()]
    frame = pd.DataFrame(rows)
    frame.to_csv(export_dir / "sanity_checks.csv", index=False, float_format="%.5g")
    section = {"images": len(sample), "sample": f"{images} per split, an equal share of each class; seed {seed}",
               "per_image": "sanity_checks.csv", "stages": list(STAGES), "tensors_shuffled": shuffled,
               "lime_stages": [s for s in STAGES if s in lime_stages], "ceiling": CEILING,
               "served": {"Grad-CAM": SERVED, "LIME": SEGMENTATION}, "lime_samples": samples,
               "heads": {name: {k: v for k, v in head.items() if k not in ("kernel", "bias")}
                         for name, head in heads.items()}}
    for m in (*METHODS, "LIME"):
        part = frame[frame["map"] == m]
        variants = tuple(part.method.unique())
        section[m] = summarise(part, variants, (), SIMILARITY, variants[0])
        repeat = "seed 1" if m == "LIME" else "served runtime"
        cascade = [s for s in STAGES if s in variants]
        section[m]["verdict"] = {"model_randomisation": verdict(section[m], cascade, repeat),
                                 "label_randomisation": verdict(section[m], ["labels shuffled"], repeat)}
    record(export_dir, {"sanity_checks": section})
    return section
