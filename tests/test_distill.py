"""An ensemble distilled into one network: the teacher's answers per image and flip become soft targets."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from model.labels import CLASSES


@pytest.fixture(scope="module")
def teacher_run(run_with_extra):
    """The session's tiny run as the teacher, and its recipe without lesion crops for the student."""
    from training.config import Config

    cfg = Config(**{**json.loads((run_with_extra / "config.json").read_text()), "lesion_crop": 0.0})
    return run_with_extra, replace(cfg, size=tuple(cfg.size))


def test_the_teacher_answers_for_every_flip_as_served(teacher_run):
    from model import load_classifier
    from training.distill import VIEWS, teacher_probs

    out, _ = teacher_run
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (5, 64, 80, 3), np.uint8)
    export = str(out / "export")
    probs = teacher_probs(f"{export}+{export}", images)  # a model averaged with itself is the model
    assert probs.shape == (5, len(VIEWS), len(CLASSES)) and np.allclose(probs.sum(-1), 1, atol=1e-5)
    runtime = load_classifier(export)
    flipped = np.ascontiguousarray(images[:, ::-1, ::-1])  # up-down and left-right: VIEWS[3]
    assert np.allclose(probs[:, 3], runtime.run_uint8(flipped).probs, atol=1e-6)
    assert np.allclose(probs[:, 0], runtime.run_uint8(images).probs, atol=1e-6)
    as_they_are = teacher_probs(export, images, flips=1)
    assert as_they_are.shape == (5, 1, len(CLASSES)) and np.allclose(as_they_are[:, 0], probs[:, 0], atol=1e-6)
    with pytest.raises(ValueError, match="the teacher takes"):  # not answered at another size
        teacher_probs(export, images[:, :32])


def test_each_target_is_the_teacher_s_answer_for_the_flip_drawn_blended_with_the_label():
    from training.config import Config
    from training.train import _datasets

    n, size = 16, (64, 80)
    image = np.zeros((*size, 3), np.uint8)
    image[: size[0] // 2, : size[1] // 2] = 255  # the top-left quadrant is bright: a flip moves it
    labels = np.arange(n) % len(CLASSES)
    soft = np.zeros((n, 4, len(CLASSES)), np.float32)
    soft[:, :, 0] = np.arange(4) / 4 + 0.1  # each view's answer is told apart by its first entry
    soft[:, :, 1] = 1 - soft[:, :, 0]
    arrays = {name: np.repeat(image[None], n, 0) for name in ("train", "val", "test")}
    cfg = Config(data="", out="", size=size, batch_size=4, vignette=0.0, distill=0.25, balance="none")
    train, _ = _datasets(arrays, {k: labels for k in arrays}, cfg, teacher=soft)
    seen = set()
    for _ in range(3):
        for x, target, _weight in train:
            for k in range(len(x)):
                quadrants = [[float(np.mean(x[k, r * 32:(r + 1) * 32, c * 40:(c + 1) * 40])) for c in (0, 1)]
                             for r in (0, 1)]
                up_down, left_right = np.unravel_index(np.argmax(quadrants), (2, 2))
                view = 2 * up_down + left_right
                seen.add(int(view))
                onehot = np.eye(len(CLASSES))[int(np.argmax(target[k] - 0.25 * soft[0, view]))]
                assert np.allclose(target[k], 0.25 * soft[0, view] + 0.75 * onehot, atol=1e-6)
    assert seen == {0, 1, 2, 3}


def test_extra_sources_learn_the_teacher_s_answer_alone_with_ham10000_s_class_balance():
    from training.config import Config
    from training.train import _datasets, class_weights

    size = (32, 40)
    labels = np.array([0, 0, 0, 1, 2, 3, 4, 5, 6] + [4] * 5)  # five extra images labelled melanoma
    sources = np.array(["ham10000"] * 9 + ["isic2017"] * 5)
    rng = np.random.default_rng(0)
    soft = np.repeat(rng.dirichlet(np.ones(len(CLASSES)), len(labels)).astype(np.float32)[:, None], 4, axis=1)
    arrays = {name: np.full((len(labels), *size, 3), 128, np.uint8) for name in ("train", "val", "test")}
    onehot = np.eye(len(CLASSES), dtype=np.float32)[labels]
    for extra_target, trusted in (("teacher", 9), ("label", len(labels))):
        cfg = Config(data="", out="", size=size, batch_size=len(labels), vignette=0.0, distill=0.25, teacher="t",
                     extra="e", extra_target=extra_target)
        train, _ = _datasets(arrays, {k: labels for k in arrays}, cfg, teacher=soft, sources=sources)
        per_class = class_weights(labels[:trusted])  # the extra labels count only when they are trained on
        _, targets, weights = next(iter(train))
        alone = extra_target == "teacher"
        blends = [soft[i, 0] if alone and i >= 9 else 0.25 * soft[i, 0] + 0.75 * onehot[i] for i in range(len(labels))]
        matched = set()
        for target, weight in zip(targets.numpy(), weights.numpy(), strict=True):
            i = int(np.argmin([np.abs(target - b).sum() for b in blends]))
            assert np.allclose(target, blends[i], atol=1e-6)
            expected = soft[i, 0] @ per_class if alone and i >= 9 else per_class[labels[i]]
            assert weight == pytest.approx(expected, rel=1e-5)
            matched.add(i)
        assert matched == set(range(len(labels)))
    with pytest.raises(ValueError, match="--extra-target teacher"):
        Config(data="", out="", extra="e", extra_target="teacher")
    with pytest.raises(ValueError, match="--sampling balanced"):
        Config(data="", out="", teacher="t", extra="e", extra_target="teacher", sampling="balanced")


def test_online_the_teacher_answers_for_each_image_as_augmented_and_mixed(teacher_run):
    from model import load_classifier
    from training.config import Config
    from training.distill import online_teacher
    from training.train import _datasets

    out, cfg = teacher_run
    export = str(out / "export")
    runtime = load_classifier(export)
    size, n = runtime.input_size, 12
    rng = np.random.default_rng(0)
    arrays = {name: rng.integers(0, 255, (n, *size, 3), np.uint8) for name in ("train", "val", "test")}
    labels = np.arange(n) % len(CLASSES)
    share = 0.25
    student = Config(data="", out="", size=size, batch_size=4, balance="none", teacher=export, teach="online",
                     distill=share, mix="mixup", mix_share=1.0)
    teach = online_teacher(f"{export}+{export}", share)  # a model averaged with itself is the model
    train, _ = _datasets(arrays, {k: labels for k in arrays}, student, teach=teach)
    mixed = 0
    for x, target, weight in train:
        rest = (target.numpy() - share * runtime.run(x.numpy()).probs) / (1 - share)  # the label, mixed as x was
        assert np.allclose(rest.sum(1), 1, atol=1e-5) and (rest > -1e-5).all() and np.allclose(weight, 1)
        assert ((rest > 1e-4).sum(1) <= 2).all()  # one image, or a blend of two
        mixed += int(((rest > 1e-4).sum(1) == 2).sum())
    assert mixed > 0  # the teacher answered for blends, not only whole images
    with pytest.raises(ValueError, match="needs --teacher"):
        Config(data="", out="", teach="online")
    with pytest.raises(ValueError, match="--teach online with --extra-target teacher"):
        Config(data="", out="", teacher="t", extra="e", extra_target="teacher", teach="online")


def test_a_student_trains_on_the_teacher_s_answers_and_a_teacher_of_another_split_is_refused(teacher_run, tmp_path,
                                                                                             monkeypatch):
    import training.train
    from training.config import recipe_phrases
    from training.distill import TEACHER_FILE

    out, cfg = teacher_run
    student = tmp_path / "student"
    # the teacher's answers are what is new here; scoring and the card are finish_run's, tested on other runs
    monkeypatch.setattr(training.train, "finish_run", lambda out: {})
    training.train.train(replace(cfg, out=str(student), teacher=str(out / "export"), distill=0.5, run_seed=1,
                                 finetune_epochs=0))
    soft = np.load(student / TEACHER_FILE)
    trained_on = pd.read_csv(student / "split.csv").query("split == 'train'")  # HAM10000 and ISIC 2017's train part
    assert soft.shape == (len(trained_on), 4, len(CLASSES)) and trained_on.source.ne("ham10000").any()
    config = json.loads((student / "config.json").read_text())
    assert config["teacher"] == str(out / "export") and (student / "best.weights.h5").is_file()
    assert any(p.startswith("distilled from the mean of 1 models' probabilities (50% of the target")
               for p in recipe_phrases(config))
    online = tmp_path / "online"
    training.train.train(replace(cfg, out=str(online), teacher=str(out / "export"), teach="online", run_seed=1,
                                 finetune_epochs=1, lesion_crop=0.5))  # online, the teacher answers for crops too
    assert not (online / TEACHER_FILE).exists() and (online / "best.weights.h5").is_file()
    assert "the teacher answering online for each augmented, mixed batch (consistent teaching)" in recipe_phrases(
        json.loads((online / "config.json").read_text()))
    with pytest.raises(ValueError, match="another split"):
        training.train.train(replace(cfg, out=str(tmp_path / "other"), seed=1, teacher=str(out / "export")))
    with pytest.raises(ValueError, match="--distill"):
        replace(cfg, distill=1.5)


def test_select_teacher_keeps_the_epoch_closest_to_the_teacher_on_validation(teacher_run, tmp_path, monkeypatch):
    import training.train
    from training.config import Config
    from training.distill import TEACHER_VAL_FILE, teacher_divergence
    from training.state import RunState

    out, cfg = teacher_run
    student = tmp_path / "student"
    monkeypatch.setattr(training.train, "finish_run", lambda out: {})
    training.train.train(replace(cfg, out=str(student), teacher=str(out / "export"), select="teacher", run_seed=2,
                                 finetune_epochs=2, finetune_lr=1e-2, patience=None))
    history, best = RunState(student / "state.json").history, RunState(student / "state.json").best
    closest = min(history, key=lambda h: h["val_teacher_kl"])
    assert len(history) == 3 and (best["phase"], best["epoch"]) == (closest["phase"], closest["epoch"])
    val = pd.read_csv(student / "split.csv").query("split == 'val'")
    teacher_val = np.load(student / TEACHER_VAL_FILE)
    assert teacher_val.shape == (len(val), 1, len(CLASSES))  # only the images as they are are compared
    assert teacher_divergence(teacher_val[:, 0], teacher_val[:, 0]) == pytest.approx(0, abs=1e-6)
    assert teacher_divergence(teacher_val[:, 0], np.full_like(teacher_val[:, 0], 1 / len(CLASSES))) > 0
    with pytest.raises(ValueError, match="needs --teacher"):
        Config(data="", out="", select="teacher")
