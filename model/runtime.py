"""The serving runtime: the shipped LiteRT flatbuffer, without importing TensorFlow.

One ``invoke`` returns both the class probabilities and the last convolutional features
(``out_relu``), so Grad-CAM costs no second pass. The dense head's kernel is read back out
of the same flatbuffer, so there is no second file that could drift from the model.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from .card import CARD_FILE, ModelCard
from .labels import CLASSES
from .preprocessing import prepare_batch, scale

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
KERAS_FILE = "skin_mobilenetv2.keras"
LITERT_FILE = "skin_mobilenetv2.tflite"
# the gradient model of finer Grad-CAMs (training/cam_export.py): optional, beside the served file
CAM_FILE = "skin_mobilenetv2_cam.tflite"
CAM_SIGNATURE = "cam"
CAM_LAYERS = ("block_13_expand_relu", "block_6_expand_relu")  # strides 16 and 8: 10x13 and 19x25 at 150x200
MAX_BATCH = 32  # larger requests are run in chunks of this many images


@cache
def shipped_card() -> ModelCard:
    """The shipped model's card, read once: the defaults every door (app, API, CLI) shares.

    Plain Python, so callers such as ``model.risk`` need neither TensorFlow nor LiteRT.
    """
    return ModelCard.read(SHIPPED_DIR)


class Output(NamedTuple):
    """What one runtime call answers: a tuple, so ``probs, features = clf.run(x)`` reads as before."""

    probs: np.ndarray  # (N, 7) float32, CLASSES order
    features: np.ndarray  # (N, h, w, C) float32 ``out_relu`` activations


class ClassifierLike(Protocol):
    """What ``explain`` needs of a classifier: the runtime's call, its input size and dense head.

    ``Classifier`` is one; a wrapper (another runtime, a test double) that has these is another.
    """

    input_size: tuple[int, int]
    head_kernel: np.ndarray  # (C, 7)

    def run(self, batch: np.ndarray) -> Output: ...

    def predict_with_features(self, images: Sequence[np.ndarray]) -> Output: ...


class ModelFileError(RuntimeError):
    """The model file is missing or damaged; the message says which file and how to restore it."""


def restore_advice(path: Path) -> str:
    """How to get a working model file back: git only knows the shipped files."""
    path = Path(path).resolve()
    if path.is_relative_to(SHIPPED_DIR):
        return f"restore it with `git checkout -- {path.relative_to(SHIPPED_DIR.parent.parent)}`"
    return ("give a LiteRT .tflite file or an export folder holding one (`python -m training` makes them), "
            "or no path for the shipped model")


def sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Classifier:
    """MobileNetV2 skin-lesion classifier on LiteRT. Thread-safe; one interpreter per instance."""

    def __init__(self, litert_path: str | os.PathLike[str], num_threads: int | None = None):
        # Imported here, not at the top: LiteRT loads when a model does, so the card, the labels and the
        # risk summary (model.risk reads shipped_card from here) work without it (tests/test_risk.py).
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(litert_path)
        if not self.path.is_file():
            raise ModelFileError(f"model file {self.path} is missing; {restore_advice(self.path)}")
        threads = num_threads or min(os.cpu_count() or 1, 4)
        try:
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            advice = restore_advice(self.path)
            raise ModelFileError(f"model file {self.path} cannot be loaded ({exc}); {advice}") from exc
        self.num_threads = threads
        self._input = self._interpreter.get_input_details()[0]
        outputs = self._interpreter.get_output_details()
        self._probs_index = next(d["index"] for d in outputs if len(d["shape"]) == 2)
        features = next(d for d in outputs if len(d["shape"]) == 4)
        self._features_index = features["index"]
        self.input_size: tuple[int, int] = tuple(int(s) for s in self._input["shape"][1:3])
        self.classes = CLASSES
        self.head_kernel = self._find_head_kernel(int(features["shape"][-1]))  # (C, 7)
        self._shape = tuple(int(d) for d in self._input["shape"])
        self._lock = threading.Lock()
        self._cam_runner = None  # the gradient model, loaded on first use
        self._cam_lock = threading.Lock()
        self.has_gradients = (self.path.parent / CAM_FILE).is_file()  # whether the gradient model ships beside it
        self._card = ModelCard.read(self.path.parent / CARD_FILE)

    def _find_head_kernel(self, channels: int) -> np.ndarray:
        """The dense layer mapping pooled features to logits, stored (7, C) in the flatbuffer."""
        for detail in self._interpreter.get_tensor_details():
            if tuple(detail["shape"]) == (len(CLASSES), channels):
                return np.array(self._interpreter.get_tensor(detail["index"]), dtype=np.float32).T
        raise ModelFileError(f"{self.path}: no dense head of shape ({len(CLASSES)}, {channels}) found")

    def run(self, batch: np.ndarray) -> Output:
        """Scaled float32 (N, H, W, 3) input -> ``Output`` (probabilities (N, 7), features (N, h, w, C))."""
        probs, features = [], []
        for start in range(0, len(batch), MAX_BATCH):
            p, f = self._invoke(np.ascontiguousarray(batch[start : start + MAX_BATCH], np.float32))
            probs.append(p)
            features.append(f)
        if len(probs) == 1:
            return Output(probs[0], features[0])
        return Output(np.concatenate(probs), np.concatenate(features))

    def run_uint8(self, images: np.ndarray) -> Output:
        """(N, H, W, 3) uint8 RGB images already at ``input_size`` -> ``Output``.

        The entry point for callers that resized a batch themselves (batch scoring, studies):
        ``scale`` is applied here, so the network's input convention stays in one place.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (*self.input_size, 3):
            raise ValueError(f"run_uint8 takes (N, {self.input_size[0]}, {self.input_size[1]}, 3) images, "
                             f"not {images.shape}; predict() resizes images of any size")
        return self.run(scale(images.astype(np.float32)))

    def _invoke(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if batch.shape != self._shape:  # a new batch size or image size
                self._interpreter.resize_tensor_input(self._input["index"], batch.shape)
                self._interpreter.allocate_tensors()
                self._shape = batch.shape
            self._interpreter.set_tensor(self._input["index"], batch)
            self._interpreter.invoke()
            return (
                self._interpreter.get_tensor(self._probs_index).copy(),
                self._interpreter.get_tensor(self._features_index).copy(),
            )

    def predict(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """HxWx3 uint8 RGB images of any size -> float32 (N, 7) probabilities in CLASSES order."""
        return self.run(prepare_batch(images, self.input_size))[0]

    def predict_with_features(self, images: Sequence[np.ndarray]) -> Output:
        """Probabilities and ``out_relu`` features in one pass (what Grad-CAM needs)."""
        return self.run(prepare_batch(images, self.input_size))

    def card(self) -> ModelCard:
        """The model card stored beside the model file (read once; every default when there is none).

        Typed where serving and the app read it (``operating_point``, ``uncertainty``, ``not_dermoscopic``,
        ``files``, ``metrics``, ...: ``model.card.ModelCard``) and a read-only mapping over the JSON for the rest.
        """
        return self._card

    def gradients(self, inputs: np.ndarray, index: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Layer -> ((h, w, C) activations, (h, w, C) d logit[index] / d activations) for one scaled input.

        Read from the gradient model ``CAM_FILE``, loaded on first use and checked against the card's SHA-256.
        """
        runner = self._gradient_runner()
        onehot = np.zeros((1, len(CLASSES)), np.float32)
        onehot[0, index] = 1.0
        with self._lock:
            out = runner(image=np.ascontiguousarray(inputs[None], np.float32), onehot=onehot)
        layers = [key.removesuffix("_activations") for key in out if key.endswith("_activations")]
        return {layer: (out[f"{layer}_activations"][0].copy(), out[f"{layer}_gradients"][0].copy()) for layer in layers}

    def _gradient_runner(self):
        with self._cam_lock:
            if self._cam_runner is None:
                self._cam_runner = self._load_gradient_runner()
        return self._cam_runner

    def _load_gradient_runner(self):
        from ai_edge_litert.interpreter import Interpreter  # when a model loads: see __init__

        path = self.path.parent / CAM_FILE
        if not path.is_file():
            raise ModelFileError(f"{path} is missing: this model was exported without its gradient model "
                                 f"(`python -m training cams EXPORT --data DIR` writes it)")
        verify(path, remake="`python -m training cams EXPORT --data DIR`")
        interpreter = Interpreter(model_path=str(path), num_threads=self.num_threads)
        return interpreter.get_signature_runner(CAM_SIGNATURE)


def verify(path: Path, remake: str = "`python -m training evaluate RUN`") -> None:
    """Check a model file against the SHA-256 its model card records (``files``), when there is a card.

    ``remake``: the command that writes the file again, for the message.
    """
    card_path = path.parent / CARD_FILE
    if not path.is_file() or not card_path.is_file():
        return
    expected = getattr(ModelCard.read(card_path).files.get(path.name), "sha256", None)
    if expected and sha256(path) != expected:
        raise ModelFileError(
            f"model file {path} is damaged or altered: its SHA-256 differs from {card_path}. "
            f"{restore_advice(path).capitalize()} (or re-export it with {remake})."
        )


def load_classifier(path: str | os.PathLike[str] | None = None, num_threads: int | None = None) -> Classifier:
    """The shipped model (no arguments, no network access), or a LiteRT file / export folder.

    The file is checked against the SHA-256 in the model card beside it before it is loaded.
    """
    path = Path(path) if path is not None else SHIPPED_DIR
    if path.is_dir():
        path = path / LITERT_FILE
    elif path.suffix.lower() != ".tflite":
        raise ModelFileError(f"{path} is not a LiteRT model file (.tflite); {restore_advice(path)}")
    verify(path)
    return Classifier(path, num_threads=num_threads)
