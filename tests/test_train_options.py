"""training/train.py's options, one at a time: the datasets it builds and the losses and layers it trains."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny_finetune


def test_rotation_augmentation_tilts_images_and_keeps_shape_and_range():
    from training.train import Config, _datasets

    image = np.zeros((150, 200, 3), np.uint8)
    image[60:90, 70:130] = 255  # a horizontal bar, 30 px tall: flips and zoom keep it under ~40 rows

    def row_extents(rotate: bool) -> list[int]:
        arrays = {name: np.stack([image] * 16) for name in ("train", "val", "test")}
        labels = {name: np.arange(16) % 7 for name in arrays}
        train, _ = _datasets(arrays, labels, Config(data="", out="", rotate=rotate, batch_size=16))
        batch = np.asarray(next(iter(train))[0])
        assert batch.shape == (16, 150, 200, 3) and batch.min() >= -1 and batch.max() <= 1
        return [int((b[..., 0] > 0).any(1).sum()) for b in batch]

    assert max(row_extents(False)) <= 40
    assert max(row_extents(True)) > 45  # tilted bars span more rows


def test_vignette_augmentation_reaches_the_share_of_training_images_asked_for():
    from training.train import Config, _datasets

    image = np.full((150, 200, 3), 230, np.uint8)

    def dark_corners(share: float) -> float:
        arrays = {name: np.stack([image] * 64) for name in ("train", "val", "test")}
        labels = {name: np.arange(64) % 7 for name in arrays}
        train, plain = _datasets(arrays, labels, Config(data="", out="", vignette=share, batch_size=64))
        batch = np.asarray(next(iter(train))[0])
        assert np.asarray(next(iter(plain["val"]))).min() > 0.5  # validation images are never vignetted
        return float((batch[:, 0, 0, 0] < -0.9).mean())  # top-left corner black ([-1, 1] scale)

    assert dark_corners(0.0) == 0.0
    assert 0.3 < dark_corners(0.6) < 0.9  # corners stay lit when the circle reaches them (radius near 1)
    assert dark_corners(1.0) > dark_corners(0.6)


def test_levels_augmentation_stretches_the_share_of_training_images_asked_for():
    from training.train import Config, _datasets

    rng = np.random.default_rng(0)
    dull = rng.integers(100, 140, (64, 60, 80, 3)).astype(np.uint8)  # no pixel near black or white

    def stretched(share: float) -> float:
        arrays = {name: dull for name in ("train", "val", "test")}
        labels = {name: np.arange(64) % 7 for name in arrays}
        train, plain = _datasets(arrays, labels, Config(data="", out="", size=(60, 80), vignette=0.0,
                                                        levels=share, batch_size=64))
        assert np.asarray(next(iter(plain["val"]))).min() > -0.3  # validation images are never stretched
        batch = np.asarray(next(iter(train))[0])
        return float((batch.reshape(64, -1).min(1) < -0.95).mean())  # reaches black ([-1, 1] scale)

    assert stretched(0.0) == 0.0
    assert 0.2 < stretched(0.5) < 0.8 and stretched(1.0) == 1.0


def test_logit_adjusted_loss_is_crossentropy_on_shifted_logits_and_balances_a_constant_model():
    import keras

    from training.train import logit_adjusted_loss

    labels = np.repeat(np.arange(7), [5, 10, 20, 2, 20, 130, 3])
    prior = np.bincount(labels) / len(labels)
    loss = logit_adjusted_loss(labels)
    logits = np.random.default_rng(0).normal(size=(4, 7)).astype(np.float32)
    y = np.eye(7, dtype=np.float32)[[0, 5, 3, 5]]
    shifted = logits + np.log(prior)
    expected = -(y * (shifted - np.log(np.exp(shifted).sum(1, keepdims=True)))).sum(1).mean()
    assert float(loss(y, logits)) == pytest.approx(expected, rel=1e-5)

    # one constant logit vector fitted to these labels: plain cross-entropy learns the prior
    # (nv wins everything); the adjusted loss learns equal probabilities, the balanced answer
    def fit(loss_fn) -> np.ndarray:
        z = keras.Variable(np.zeros(7, np.float32))
        optimizer = keras.optimizers.Adam(0.05)
        targets = np.eye(7, dtype=np.float32)[labels]
        import tensorflow as tf

        for _ in range(400):
            with tf.GradientTape() as tape:
                value = loss_fn(targets, tf.tile(z[None], (len(labels), 1)))
            optimizer.apply_gradients([(tape.gradient(value, z.value), z)])
        return keras.ops.convert_to_numpy(keras.ops.softmax(z))

    plain = fit(keras.losses.CategoricalCrossentropy(from_logits=True))
    adjusted = fit(loss)
    assert np.abs(plain - prior).max() < 0.02
    assert np.abs(adjusted - 1 / 7).max() < 0.02


@pytest.mark.parametrize("balance", ["weights", "logit_adjust", "none"])
def test_balance_option_sets_the_sample_weights(balance):
    from training.train import Config, _datasets

    labels = {name: np.repeat(np.arange(7), [1, 2, 2, 1, 2, 7, 1]) for name in ("train", "val", "test")}
    arrays = {name: np.zeros((16, 20, 30, 3), np.uint8) for name in labels}
    train, _ = _datasets(arrays, labels, Config(data="", out="", size=(20, 30), batch_size=16, balance=balance))
    _, targets, weights = (np.asarray(t) for t in next(iter(train)))
    weights_by_class = {int(c): float(w) for c, w in zip(targets.argmax(1), weights, strict=True)}
    if balance == "weights":  # nv (7 of 16) counts as much as df (1 of 16)
        assert weights_by_class[5] * 7 == pytest.approx(weights_by_class[3] * 1)
    else:
        assert set(weights_by_class.values()) == {1.0}


def test_unknown_balance_is_refused():
    from training.train import Config, _datasets

    arrays = {name: np.zeros((7, 20, 30, 3), np.uint8) for name in ("train", "val", "test")}
    labels = {name: np.arange(7) for name in arrays}
    with pytest.raises(ValueError, match="balance must be one of"):
        _datasets(arrays, labels, Config(data="", out="", size=(20, 30), balance="oversample"))


def _kept_weights(path) -> dict[str, np.ndarray]:
    """Every array of a Keras ``.weights.h5`` file by its path inside the file."""
    import h5py

    arrays = {}
    with h5py.File(path, "r") as fh:
        fh.visititems(lambda name, node: arrays.update({name: node[()]}) if isinstance(node, h5py.Dataset) else None)
    return arrays


def _epochs_moved(out) -> float:
    """The largest change of any weight between phase 2's two kept epochs (the weights as scored)."""
    from training.config import epoch_weights

    first, last = _kept_weights(out / epoch_weights(1)), _kept_weights(out / epoch_weights(2))
    assert first.keys() == last.keys()
    return max(float(np.abs(first[k] - last[k]).max()) for k in first if first[k].size)


@pytest.mark.slow
def test_ema_scores_and_keeps_the_averaged_weights(shared_data, tmp_path, raw_run, monkeypatch):
    """With a momentum near 1 the average stays where phase 2's first step left it, so phase 2's two
    scored epochs hold the same weights and agree, while the control run's scored weights move by
    Adam's steps (about the learning rate each, whatever the loss surface)."""
    import training.train
    from model import load_classifier

    out = tmp_path / "run"
    monkeypatch.setattr(training.train, "finish_run", lambda out: {})  # the epochs' weights are what is compared
    tiny_finetune(shared_data, out, ema=0.999999)  # raw_run's recipe with EMA
    config = json.loads((out / "config.json").read_text())
    assert config["ema"] == 0.999999 and config["balance"] == "logit_adjust"
    # the logit-adjusted control is served through the softmax whatever the training loss
    probs = load_classifier(raw_run[0] / "export").predict([np.zeros((150, 200, 3), np.uint8)])
    assert abs(probs.sum() - 1) < 1e-5
    records = json.loads((out / "state.json").read_text())["history"]
    losses = [h["val_loss"] for h in records if h["phase"] == "finetune"]
    assert abs(losses[1] - losses[0]) < 0.02
    averaged, raw = _epochs_moved(out), _epochs_moved(raw_run[0])
    assert averaged < 1e-4 and raw > 1e-3, (averaged, raw)
    assert raw_run[1]["training"]["config"]["ema"] == 0


@pytest.mark.parametrize("train_bn", [False, True])
def test_train_bn_lets_a_step_move_batch_norm_statistics_only_when_asked(train_bn):
    """Frozen batch norm keeps ImageNet's statistics (inference mode); ``train_bn`` moves them
    towards the training images' and trains the scales, in the trained part of the network only."""
    import keras

    from training.network import build_network
    from training.train import _set_trainable

    network = build_network((32, 32), weights=None)
    _set_trainable(network, "block_16_expand", train_bn)
    trained, untouched = network.get_layer("block_16_expand_BN"), network.get_layer("block_15_expand_BN")
    before = [np.array(layer.moving_variance) for layer in (trained, untouched)]
    network.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    x = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    network.train_on_batch(x, np.eye(7)[np.arange(8) % 7])
    moved = [not np.allclose(layer.moving_variance, b) for layer, b in zip((trained, untouched), before, strict=True)]
    assert moved == [train_bn, False]
    trainable = {w.path for w in network.trainable_weights}
    assert ("block_16_expand_BN/gamma" in trainable) == train_bn
    assert "block_15_expand_BN/gamma" not in trainable and "block_16_expand/kernel" in trainable


@pytest.mark.slow
def test_keep_epochs_saves_every_epoch_and_average_from_keeps_their_mean_as_the_model(raw_run):
    """``--keep-epochs`` leaves one weights file per phase-2 epoch; ``--average-from 1`` makes the
    mean of epochs 1..last the run's model (stochastic weight averaging), scored and named in the card."""
    import keras

    from training.config import epoch_weights
    from training.network import build_network

    out, card = raw_run
    assert sorted(p.name for p in out.glob("finetune.e*.weights.h5")) == [epoch_weights(1), epoch_weights(2)]

    def weights(name: str) -> list[np.ndarray]:
        network = build_network((64, 80), weights=None)
        network.load_weights(out / name)
        return network.get_weights()

    first, last, kept = weights(epoch_weights(1)), weights(epoch_weights(2)), weights("best.weights.h5")
    for a, b in zip(last, weights("finetune.weights.h5"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(first, last, strict=True))  # so the mean below could fail
    for a, b, m in zip(first, last, kept, strict=True):
        np.testing.assert_allclose(m, (a + b) / 2, rtol=1e-6, atol=1e-6)
    best = card["training"]["best_epoch"]
    assert best["phase"] == "average" and best["averaged_epochs"] == [1, 2]
    markdown = (out / "export/MODEL_CARD.md").read_text()
    assert "average of fine-tuning epochs 1-2, no epoch picked" in markdown
    assert "the uniform average of fine-tuning epochs 1 to the last" in markdown
    keras.backend.clear_session()


def test_average_from_must_be_a_fine_tuning_epoch():
    from training.train import Config

    with pytest.raises(ValueError, match="--average-from"):
        Config(data="", out="", finetune_epochs=12, average_from=13)
