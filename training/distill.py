"""An ensemble distilled into one network: the teacher's answers as soft training targets.

Runs of one recipe disagree (one replicate moved melanoma recall by 0.2); the mean of their
probabilities takes that variance out, but costs every member to serve. A student trained on the
ensemble's probabilities keeps one MobileNetV2 to serve, so every serving path stays as it is.

By default the teacher answers once per training image and view, before training (offline
distillation): the four flips the augmentation draws from, so the target matches what the student
sees in orientation ("a good teacher is patient and consistent", Beyer et al., CVPR 2022). With
``--teach online`` (``online_teacher``) it answers for each batch as the student sees it, crop,
colour jitter and mix of two images included, which that paper found a student needs to match its
teacher over a long schedule; each epoch then runs the members too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from model.card import read_json
from model.labels import CLASSES
from model.preprocessing import scale
from model.runtime import load_classifier

from .external import ensemble_members

VIEWS = ("as is", "left-right", "up-down", "both")  # index 2 * up_down + left_right
TEACHER_FILE = "teacher_probs.npy"  # in the run folder: computed once, read again on resume
TEACHER_VAL_FILE = "teacher_val_probs.npy"  # its answers for the validation images as they are (--select teacher)


def members(teacher: str) -> list[Path]:
    return [Path(m) for m in ensemble_members(teacher)]


def check_members(teacher: str, size: tuple[int, int], seed: int, images: dict[str, int]) -> None:
    """Refuse a teacher that saw the student's validation or test images, or answers at another size.

    A member trained on another split would pass what it learnt from the student's validation images
    into the student's targets, and the choice made on them would flatter it.
    """
    for member in members(teacher):
        card = read_json(member)
        member_seed = card.get("training", {}).get("config", {}).get("seed", 0)
        if member_seed != seed or card.get("data", {}).get("images") != images:
            raise ValueError(f"teacher {member} was trained on another split (seed {member_seed}, images "
                             f"{card.get('data', {}).get('images')}); the student's is seed {seed}, {images}")
        member_size = (card["input_size"]["height"], card["input_size"]["width"])
        if member_size != tuple(size):
            raise ValueError(f"teacher {member} takes {member_size[0]}x{member_size[1]} images, the student "
                             f"{size[0]}x{size[1]}")


def views(images: np.ndarray) -> list[np.ndarray]:
    """The images in each of VIEWS' flips, (N, H, W, 3) each."""
    return [images[:, ::-1 if ud else 1, ::-1 if lr else 1] for ud in (0, 1) for lr in (0, 1)]


def teacher_probs(teacher: str, images: np.ndarray, batch: int = 64, flips: int = len(VIEWS)) -> np.ndarray:
    """(N, flips, classes): the members' mean probabilities for each image in the first ``flips`` of
    VIEWS, as served (``flips=1``: the images as they are)."""
    answer = answerer(teacher)
    out = np.zeros((len(images), flips, len(CLASSES)), np.float32)
    for v, flipped in enumerate(views(images)[:flips]):
        for start in range(0, len(images), batch):
            out[start:start + batch, v] = answer(scale(flipped[start:start + batch].astype(np.float32)))
    return out


def answerer(teacher: str) -> Callable[[np.ndarray], np.ndarray]:
    """The members loaded once: scaled float32 (N, H, W, 3) images -> their mean probabilities (N, classes)."""
    runtimes = [load_classifier(m) for m in members(teacher)]

    def answer(images: np.ndarray) -> np.ndarray:
        if images.shape[1:3] != runtimes[0].input_size:  # LiteRT would resize its input and answer anyway
            raise ValueError(f"the teacher takes {runtimes[0].input_size} images, not {images.shape[1:3]}")
        return np.mean([r.run(images).probs for r in runtimes], axis=0).astype(np.float32)

    return answer


def online_teacher(teacher: str, share: float) -> Callable:
    """A batch map (scaled images, targets, weights) -> the same with each target ``share`` the teacher's
    answer for that very image and the rest the target it had (the label, mixed as the image was).

    The members run on LiteRT, as served, inside the tf.data pipeline, so they answer the next batch
    while the student trains on this one.
    """
    answer = answerer(teacher)

    def teach(images, targets, weights):
        soft = tf.numpy_function(answer, [images], tf.float32)
        soft.set_shape([None, len(CLASSES)])
        return images, share * soft + (1 - share) * targets, weights

    return teach


def cached_teacher_probs(teacher: str, images: np.ndarray, run_dir: Path, name: str = TEACHER_FILE,
                         flips: int = len(VIEWS)) -> np.ndarray:
    path = run_dir / name
    if path.is_file():
        probs = np.load(path)
        if len(probs) == len(images) and probs.shape[1] >= flips:
            return probs[:, :flips]
    probs = teacher_probs(teacher, images, flips=flips)
    np.save(path, probs)
    return probs


def teacher_divergence(teacher: np.ndarray, probs: np.ndarray) -> float:
    """Mean KL divergence of ``probs`` from the teacher's answers, (N, classes) each: how far a
    student is from matching its teacher, measured without labels."""
    t = np.clip(teacher, 1e-7, 1)
    return float(np.mean(np.sum(t * (np.log(t) - np.log(np.clip(probs, 1e-7, 1))), axis=1)))
