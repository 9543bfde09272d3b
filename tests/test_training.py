"""The training path on a tiny HAM10000-layout folder: split, train, resume, evaluate, export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from training.data import read_metadata, split_by_lesion


def test_split_is_by_lesion_and_covers_every_image(ham_folder):
    meta = read_metadata(ham_folder)
    split = split_by_lesion(meta, seed=0)
    assert split.split.notna().all() and len(split) == len(meta)
    per_lesion = split.groupby("lesion_id").split.nunique()
    assert (per_lesion == 1).all(), "a lesion has images in two splits"
    assert set(split.split) == {"train", "val", "test"}
    again = split_by_lesion(meta, seed=0)
    pd.testing.assert_series_equal(split.split, again.split)  # fixed seed, same split


def test_split_on_real_metadata_keeps_lesions_together_and_stratifies(tmp_path):
    """The real HAM10000 metadata (no images needed): no leaks, every class in every split."""
    from tests.conftest import ROOT

    csv = ROOT.parent / "shared/data/ham10000/HAM10000_metadata.csv"
    meta = pd.read_csv(csv)
    meta["path"] = ""
    split = split_by_lesion(meta, seed=0)
    assert (split.groupby("lesion_id").split.nunique() == 1).all()
    shares = split.groupby("split").lesion_id.nunique() / meta.lesion_id.nunique()
    assert shares["train"] == pytest.approx(0.70, abs=0.01) and shares["test"] == pytest.approx(0.15, abs=0.01)
    for name in ("train", "val", "test"):
        part = split[split.split == name].drop_duplicates("lesion_id")
        assert set(part.dx) == set(meta.dx)
        mel_share = (part.dx == "mel").mean()
        assert mel_share == pytest.approx((meta.drop_duplicates("lesion_id").dx == "mel").mean(), abs=0.01)


@pytest.mark.slow
def test_train_resume_and_export_on_tiny_data(ham_folder, tmp_path, capsys):
    from model import load_classifier
    from training.train import Config, train

    out = tmp_path / "run"
    cfg = Config(data=str(ham_folder), out=str(out), size=(64, 80), batch_size=8, head_epochs=1,
                 finetune_epochs=1, finetune_from="block_15_expand", workers=2)
    card = train(cfg)
    assert [row["run"] for row in card["ablation"]] == ["run"]  # alone: no earlier run to compare
    assert set(card["test_time_augmentation"]) >= {"val_balanced_accuracy_single", "val_balanced_accuracy_4_flips"}

    figures = ("confusion_test.png", "training_curves.png", "roc_test.png", "reliability_test.png",
               "misclassified_test.png")
    for name in ("split.csv", "state.json", "metrics.json", *figures, *(f"export/{f}" for f in figures),
                 "export/skin_mobilenetv2.keras", "export/skin_mobilenetv2.tflite", "export/model_card.json",
                 "export/MODEL_CARD.md"):
        assert (out / name).is_file(), name
    for name in figures:  # the card links every figure it ships
        assert f"({name})" in (out / "export/MODEL_CARD.md").read_text(), name
    split = pd.read_csv(out / "split.csv")
    assert (split.groupby("lesion_id").split.nunique() == 1).all()
    shown = json.loads((out / "metrics.json").read_text())["test"]["misclassified_shown"]
    test_probs = np.load(out / "test_probs.npy")
    test_part = split[split.split == "test"].reset_index(drop=True)
    wrong = set(test_part.image_id[test_probs.argmax(1) != test_part.label])
    assert shown and set(shown) <= wrong  # the grid shows misclassified test images only
    assert card["input_size"] == {"height": 64, "width": 80}
    assert card["litert_vs_keras"]["max_abs_diff_probs"] < 1e-4
    assert 0 <= card["metrics"]["test"]["balanced_accuracy"] <= 1
    assert 0 <= card["malignant_operating_point"]["threshold"] <= 1
    state = json.loads((out / "state.json").read_text())
    assert [h["phase"] for h in state["history"]] == ["head", "finetune"]

    clf = load_classifier(out / "export")
    probs = clf.predict([np.zeros((150, 200, 3), np.uint8)])
    assert probs.shape == (1, 7) and abs(probs.sum() - 1) < 1e-5

    # a finished run resumes without training again, and gives the same test figures
    again = train(cfg)
    assert json.loads((out / "state.json").read_text())["history"] == state["history"]
    assert again["metrics"]["test"] == card["metrics"]["test"]

    # evaluate again beside an earlier recipe: the card's ablation table names what differed
    from training.train import finish_run

    old_config = {**json.loads((out / "config.json").read_text()), "finetune_lr": 1.0}
    old_card = {"version": "old", "training": {"config": old_config, "best_epoch": card["training"]["best_epoch"]}}
    (tmp_path / "old_card.json").write_text(json.dumps(old_card))
    probe = {"results": {"none": {"balanced_accuracy": 0.5, "macro_auc": 0.8, "accuracy": 0.6}}}
    (tmp_path / "probe.json").write_text(json.dumps(probe))
    compared = finish_run(out, [tmp_path / "old_card.json"], tmp_path / "probe.json")
    assert compared["colour_probe"] == probe["results"]
    assert "| none | 0.500 | 0.800 |" in (out / "export/MODEL_CARD.md").read_text()
    assert [r["run"] for r in compared["ablation"]] == ["run", "old"]
    assert compared["ablation"][1]["differs"] == {"finetune_lr": 1.0}
    assert "finetune_lr=1.0" in (out / "export/MODEL_CARD.md").read_text()

    # the flag recalibrated from the export alone (run folder not needed) gives the run's figures
    from training.not_dermoscopic import recalibrate

    before = json.loads((out / "export/model_card.json").read_text())
    tflite = (out / "export/skin_mobilenetv2.tflite").read_bytes()
    assert "detail_threshold" in before["not_dermoscopic"] and "ood" not in before
    # a card written before the flag had one name: its stale "ood" section is replaced under the new name
    before["ood"] = before.pop("not_dermoscopic") | {"threshold": 123.0}
    (out / "export/model_card.json").write_text(json.dumps(before))
    section = recalibrate(out / "export", ham_folder)
    after = json.loads((out / "export/model_card.json").read_text())
    assert section == pytest.approx(compared["not_dermoscopic"]) and after["not_dermoscopic"] == section
    assert "ood" not in after
    assert {k: v for k, v in after.items() if k != "not_dermoscopic"} == {k: v for k, v in before.items()
                                                                          if k != "ood"}
    assert (out / "export/skin_mobilenetv2.tflite").read_bytes() == tflite
    with pytest.raises(ValueError, match="images"):
        recalibrate(out / "export", ham_folder, seed=1)  # another split: refused, not silently used

    # the robustness table: in the run's card, and measured again from the export alone
    from training.__main__ import main as training_cli
    from training.shifts import SHIFTS

    assert [r["shift"] for r in compared["robustness"]["test"]] == list(SHIFTS)
    assert "Robustness to another clinic's images" in (out / "export/MODEL_CARD.md").read_text()
    stale = json.loads((out / "export/model_card.json").read_text())
    (out / "export/model_card.json").write_text(json.dumps({k: v for k, v in stale.items() if k != "robustness"}))
    training_cli(["robustness", str(out / "export"), "--data", str(ham_folder)])
    measured = json.loads((out / "export/model_card.json").read_text())["robustness"]
    assert measured == pytest.approx(compared["robustness"])
    assert (out / "export/skin_mobilenetv2.tflite").read_bytes() == tflite

    # intervals: in the run's card and table, and measured again from the export alone
    ci = compared["metrics"]["test"]["ci95"]
    assert set(ci) >= {"balanced_accuracy", "accuracy", "macro_auc", "melanoma_recall", "ece",
                       "malignant_sensitivity", "malignant_specificity"}
    low, high = ci["balanced_accuracy"]
    assert low <= compared["metrics"]["test"]["balanced_accuracy"] <= high
    assert "test 95% interval" in (out / "export/MODEL_CARD.md").read_text()
    stale = json.loads((out / "export/model_card.json").read_text())
    for part in stale["metrics"].values():
        del part["ci95"]
    (out / "export/model_card.json").write_text(json.dumps(stale))
    training_cli(["intervals", str(out / "export"), "--data", str(ham_folder)])
    remeasured = json.loads((out / "export/model_card.json").read_text())["metrics"]["test"]["ci95"]
    assert remeasured["balanced_accuracy"] == pytest.approx(ci["balanced_accuracy"], abs=1e-3)

    # explanations: scored from the export against the lesion boxes, into its card and nothing else
    before = json.loads((out / "export/model_card.json").read_text())
    training_cli(["explanations", str(out / "export"), "--data", str(ham_folder), "--images", "7"])
    after = json.loads((out / "export/model_card.json").read_text())
    assert {k: v for k, v in after.items() if k != "explanations"} == before
    measured = after["explanations"]
    for split in ("val", "test"):
        assert 0 < measured[split]["images"] <= 7
        for method in ("Grad-CAM", "LIME", "centre prior", "random"):
            scores = measured[split][method]
            assert all(0 <= scores[m] <= 1 for m in ("pointing_hit", "energy_in_box", "deletion_auc", "insertion_auc"))
            assert scores["ci95"]["deletion_auc"][0] <= scores["deletion_auc"] <= scores["ci95"]["deletion_auc"][1]
    assert "How far the explanations can be trusted" in (out / "export/MODEL_CARD.md").read_text()
    assert (out / "export" / measured["figure"]).is_file()
    per_image = pd.read_csv(out / "export" / measured["per_image"])
    assert len(per_image) == 4 * (measured["val"]["images"] + measured["test"]["images"])
    test_rows = per_image[per_image.split == "test"]
    for method in ("Grad-CAM", "LIME"):  # the card's means and paired differences come from the per-image rows
        mine, centre = (test_rows[test_rows.method == m].deletion_auc.to_numpy() for m in (method, "centre prior"))
        assert measured["test"][method]["deletion_auc"] == pytest.approx(mine.mean(), abs=1e-4)
        paired = measured["test"][method]["minus_centre_prior"]["deletion_auc"]
        assert paired["difference"] == pytest.approx((mine - centre).mean(), abs=1e-4)
    assert (out / "export/skin_mobilenetv2.tflite").read_bytes() == tflite

    # a run compared with itself differs by nothing
    training_cli(["compare", str(out), str(out), "--split", "test"])
    assert "balanced_accuracy +0.000 (+0.000 to +0.000)" in capsys.readouterr().out


def test_colour_probe_scores_every_variant(ham_folder, tmp_path):
    from model.network import COLOUR
    from training.probe import probe

    results = probe(str(ham_folder), str(tmp_path / "probe"))
    assert set(results) == set(COLOUR)
    for figures in results.values():
        assert 0 <= figures["balanced_accuracy"] <= 1
    assert json.loads((tmp_path / "probe" / "probe.json").read_text())["results"] == results


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


def test_vignette_blacks_out_the_corners_and_keeps_the_centre():
    from training.shifts import vignette

    images = np.full((2, 150, 200, 3), 200, np.uint8)
    black = [float((vignette(images, r)[0, ..., 0] == 0).mean()) for r in (1.0, 0.8, 0.6)]
    assert black[0] < 0.01 < black[1] < black[2] < 0.5  # a smaller circle blacks out more
    out = vignette(images, 0.6)
    assert (out[:, :3, :3] == 0).all() and (out[:, 70:80, 95:105] == 200).all()


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


def test_cast_scales_each_channel_and_clips():
    from training.shifts import cast

    image = np.full((1, 4, 4, 3), 200, np.uint8)
    assert cast(image, (1.1, 1.0, 0.5))[0, 0, 0].tolist() == [220, 200, 100]
    assert cast(image, (1.5, 1.5, 1.5)).max() == 255


def test_cast_augmentation_changes_colours_within_its_range():
    import tensorflow as tf

    from training.shifts import random_cast

    image = tf.fill((8, 8, 3), 0.5)
    out = np.stack([np.asarray(random_cast(image, 0.2))[0, 0] for _ in range(30)])
    assert np.all(out >= 0.5 * 0.8 * 0.8 - 1e-6) and np.all(out <= 0.5 * 1.2 * 1.2 + 1e-6)
    assert out.std(axis=0).min() > 0.01  # every channel moves
    assert np.abs(out[:, 0] - out[:, 2]).max() > 0.02  # and not all by the same gain: a colour cast


def test_vignette_robustness_tells_a_model_that_reads_the_corners_from_one_that_does_not():
    from training.shifts import SHIFTS, robustness

    rng = np.random.default_rng(0)
    images = rng.integers(100, 255, (20, 60, 80, 3), dtype=np.uint8)
    labels = np.arange(20) % 2

    def centre_reader(x):  # answers from the centre only, so a vignette cannot change it
        return np.eye(7)[np.where(x[:, 30, 40, 0] > 0, labels, 0)]

    def corner_reader(x):  # a black corner means class 4
        return np.eye(7)[np.where(x[:, 0, 0, 0] == 0, 4, labels)]

    vignettes = {name: shift for name, shift in SHIFTS.items() if name.startswith("vignette")}
    steady, fooled = robustness(centre_reader, images, labels, vignettes), robustness(corner_reader, images, labels,
                                                                                      vignettes)
    assert all(r["top_class_unchanged"] == 1.0 and r["balanced_accuracy"] == 1.0 for r in steady)
    assert all(r["top_class_unchanged"] == 0.0 and r["balanced_accuracy"] == 0.0 for r in fooled)


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


@pytest.mark.slow
def test_ema_scores_and_keeps_the_averaged_weights(ham_folder, tmp_path):
    """With a momentum near 1 the average stays where phase 2's first step left it, so phase 2's
    two scored epochs agree, while a control run without it scores its moving raw weights."""
    from model import load_classifier
    from training.train import Config, train

    def history(ema: float, balance: str) -> dict:
        cfg = Config(data=str(ham_folder), out=str(tmp_path / f"run_{ema}"), size=(64, 80), batch_size=8,
                     head_epochs=1, finetune_epochs=2, warmup_epochs=1, finetune_lr=1e-2,
                     finetune_from="block_15_expand", patience=None,
                     workers=2, ema=ema, balance=balance)
        card = train(cfg)
        assert card["training"]["config"]["ema"] == ema and card["training"]["config"]["balance"] == balance
        probs = load_classifier(tmp_path / f"run_{ema}" / "export").predict([np.zeros((150, 200, 3), np.uint8)])
        assert abs(probs.sum() - 1) < 1e-5  # served through the softmax whatever the training loss
        records = json.loads((tmp_path / f"run_{ema}" / "state.json").read_text())["history"]
        return [h["val_loss"] for h in records if h["phase"] == "finetune"]

    averaged = history(0.999999, "logit_adjust")
    assert abs(averaged[1] - averaged[0]) < 0.02
    raw = history(0.0, "logit_adjust")
    assert abs(raw[1] - raw[0]) > 0.1


@pytest.mark.parametrize("train_bn", [False, True])
def test_train_bn_lets_a_step_move_batch_norm_statistics_only_when_asked(train_bn):
    """Frozen batch norm keeps ImageNet's statistics (inference mode); ``train_bn`` moves them
    towards the training images' and trains the scales, in the trained part of the network only."""
    import keras

    from model.network import build_network
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


def test_ablation_reads_an_option_newer_than_an_old_run_as_its_default():
    from training.recipes import ablation
    from training.train import Config

    best = {"val_balanced_accuracy": 0.7, "val_macro_auc": 0.9, "phase": "finetune", "epoch": 3}
    old = {"name": "old", "config": {"finetune_lr": 5e-5}, "best": best}  # predates rotate/balance/ema
    rows = ablation(Config(data="", out="runs/new", ema=0.998, balance="logit_adjust", vignette=0.0), best, [old])
    assert rows[1]["differs"] == {"finetune_lr": 5e-5, "balance": "weights", "ema": 0.0}


def test_a_model_card_brings_its_recipe_table_to_the_next_one(tmp_path):
    from training.recipes import ablation, recipe_summaries
    from training.train import Config

    def best(bacc, epoch):
        return {"val_balanced_accuracy": bacc, "val_macro_auc": 0.9, "phase": "finetune", "epoch": epoch}

    card = {"version": "v3", "training": {"config": {"finetune_lr": 1e-4, "patience": 8}, "best_epoch": best(0.70, 11)},
            "ablation": [{"run": "v3", "differs": {}, "val_balanced_accuracy": 0.70, "val_macro_auc": 0.9,
                          "best_epoch": "finetune 11"},
                         {"run": "v2", "differs": {"finetune_lr": 5e-5}, "val_balanced_accuracy": 0.69,
                          "val_macro_auc": 0.9, "best_epoch": "finetune 9"}]}
    (tmp_path / "card.json").write_text(json.dumps(card))
    folder = tmp_path / "v2"  # a run folder named like one of the card's rows: the one listed first wins
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"finetune_lr": 5e-5, "patience": 6}))
    (folder / "state.json").write_text(json.dumps({"best": best(0.68, 7)}))

    new = Config(data="", out="runs/v6", balance="logit_adjust", vignette=0.0, patience=8)
    rows = ablation(new, best(0.71, 5), [s for c in (tmp_path / "card.json", folder) for s in recipe_summaries(c)])
    assert [r["run"] for r in rows] == ["v6", "v3", "v2"]
    assert rows[1]["differs"] == {"balance": "weights"}
    assert rows[2]["differs"] == {"finetune_lr": 5e-5, "balance": "weights"}
    assert (rows[2]["val_balanced_accuracy"], rows[2]["best_epoch"]) == (0.69, "finetune 9")
    rows = ablation(new, best(0.71, 5), recipe_summaries(folder))
    assert rows[1]["differs"] == {"finetune_lr": 5e-5, "patience": 6, "balance": "weights"}


def test_card_add_records_an_unshipped_run_and_leaves_the_rest_of_the_card_alone(tmp_path, capsys):
    import shutil

    from model.runtime import SHIPPED_DIR
    from training.__main__ import main

    card_path = tmp_path / "model_card.json"
    shutil.copy(SHIPPED_DIR / "model_card.json", card_path)
    before = json.loads(card_path.read_text())
    run = tmp_path / "la"
    run.mkdir()
    config = {**before["training"]["config"], "balance": "logit_adjust", "ema": 0.998}
    (run / "config.json").write_text(json.dumps(config))
    best = {"phase": "finetune", "epoch": 9, "val_balanced_accuracy": 0.6123, "val_macro_auc": 0.9321}
    (run / "state.json").write_text(json.dumps({"best": best, "seconds": 1500.0}))

    main(["card", str(card_path), "--add", str(run)])
    after = json.loads(card_path.read_text())
    kept = [{k: v for k, v in r.items() if k != "train_minutes"} for r in after["ablation"][:-1]]
    assert kept == [{k: v for k, v in r.items() if k != "train_minutes"} for r in before["ablation"]]
    assert after["ablation"][0]["train_minutes"] == round(before["training"]["train_seconds"] / 60, 1)
    assert after["ablation"][-1] == {"run": "la", "differs": {"balance": "logit_adjust", "ema": 0.998},
                                     "val_balanced_accuracy": 0.6123, "val_macro_auc": 0.9321,
                                     "best_epoch": "finetune 9", "train_minutes": 25.0}
    assert {k: v for k, v in after.items() if k != "ablation"} == {k: v for k, v in before.items() if k != "ablation"}
    assert "| la | balance=logit_adjust, ema=0.998 | 0.612 | 0.932 | finetune 9 | 25 |" in (
        tmp_path / "MODEL_CARD.md").read_text()
    assert "0.612" in capsys.readouterr().out

    best["val_balanced_accuracy"] = 0.65  # the same run again, re-scored: replaced, not listed twice
    (run / "state.json").write_text(json.dumps({"best": best}))
    main(["card", str(card_path), "--add", str(run)])
    rows = json.loads(card_path.read_text())["ablation"]
    assert [r["run"] for r in rows].count("la") == 1 and rows[-1]["val_balanced_accuracy"] == 0.65

    again = tmp_path / "again"  # the shipped recipe run a second time: a repeat, not "this run"
    again.mkdir()
    (again / "config.json").write_text(json.dumps(before["training"]["config"]))
    (again / "state.json").write_text(json.dumps({"best": best}))
    main(["card", str(card_path), "--add", str(again)])
    markdown = (tmp_path / "MODEL_CARD.md").read_text()
    assert "| again | (same recipe, run again) |" in markdown and markdown.count("(this run)") == 1


def test_card_probe_replaces_the_colour_table_and_its_verdict_reads_the_recipe_table(tmp_path):

    from model.runtime import SHIPPED_DIR
    from training.__main__ import main

    card_path = tmp_path / "model_card.json"
    shipped = json.loads((SHIPPED_DIR / "model_card.json").read_text())
    # a run that differs from the shipped one by the colour layer alone (as v20 did from v13)
    shipped["ablation"].append({**shipped["ablation"][0], "run": "colour-only", "differs": {"colour": "shades_of_gray"},
                                "val_balanced_accuracy": 0.696})
    card_path.write_text(json.dumps(shipped))
    before = json.loads(card_path.read_text())
    results = {"none": {"balanced_accuracy": 0.49, "macro_auc": 0.87, "accuracy": 0.69},
               "shades_of_gray": {"balanced_accuracy": 0.52, "macro_auc": 0.86, "accuracy": 0.70}}
    (tmp_path / "probe.json").write_text(json.dumps({"results": results}))
    with pytest.raises(SystemExit):  # neither runs nor a probe: refused
        main(["card", str(card_path)])

    main(["card", str(card_path), "--probe", str(tmp_path / "probe.json")])
    after = json.loads(card_path.read_text())
    assert after["colour_probe"] == results
    assert {k: v for k, v in after.items() if k != "colour_probe"} == {k: v for k, v in before.items()
                                                                       if k != "colour_probe"}
    markdown = (tmp_path / "MODEL_CARD.md").read_text()
    assert "| shades_of_gray | 0.520 | 0.860 |" in markdown
    assert "shades_of_gray beats no preprocessing by +0.030 balanced accuracy on this probe" in markdown
    tuned = next(r for r in before["ablation"] if r["differs"] == {"colour": "shades_of_gray"})
    assert (f"fine-tuned whole with it, a run reached {tuned['val_balanced_accuracy']:.3f} validation balanced "
            f"accuracy against this model's {before['ablation'][0]['val_balanced_accuracy']:.3f}") in markdown


def _lesion_predictions(lesions: int = 200, images_per_lesion: int = 4, seed: int = 0):
    """Labels and probabilities where each lesion's images share one answer, right or wrong."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, lesions)
    answers = np.where(rng.random(lesions) < 0.7, labels, (labels + 1) % 7)
    probs = np.full((lesions, 7), 0.02)
    probs[np.arange(lesions), answers] = 0.88
    repeat = np.repeat(np.arange(lesions), images_per_lesion)
    return labels[repeat], probs[repeat], repeat


def test_bootstrap_resamples_lesions_so_copies_do_not_narrow_the_interval():
    from model.metrics import bootstrap_intervals

    labels, probs, lesions = _lesion_predictions()
    by_lesion = bootstrap_intervals(labels, probs, lesions, resamples=400)
    by_image = bootstrap_intervals(labels, probs, None, resamples=400)  # as if the copies were independent
    one_each = bootstrap_intervals(labels[::4], probs[::4], None, resamples=400)
    for name in ("accuracy", "balanced_accuracy"):
        width = np.diff(by_lesion[name])[0]
        assert width == pytest.approx(np.diff(one_each[name])[0], rel=0.3)
        assert width > 1.5 * np.diff(by_image[name])[0]
        accuracy = (probs.argmax(1) == labels).mean()
        if name == "accuracy":
            assert by_lesion[name][0] < accuracy < by_lesion[name][1]


def test_paired_difference_sees_a_small_sure_gain_that_separate_intervals_hide():
    from model.metrics import bootstrap_intervals
    from training.intervals import paired_differences

    labels, probs, lesions = _lesion_predictions()
    better = probs.copy()
    wrong = np.flatnonzero(probs.argmax(1) != labels)
    fixed = wrong[np.isin(lesions[wrong], np.unique(lesions[wrong])[:8])]  # 8 lesions answered right now
    better[fixed] = 0.02
    better[fixed, labels[fixed]] = 0.88
    paired = paired_differences(labels, probs, better, lesions, resamples=300)["accuracy"]
    assert paired["difference"] == pytest.approx(8 / 200)
    assert paired["ci95"][0] > 0  # never worse on any resample
    apart = [bootstrap_intervals(labels, p, lesions, resamples=400)["accuracy"] for p in (probs, better)]
    assert apart[1][0] < apart[0][1]  # the two runs' own intervals overlap
    same = paired_differences(labels, probs, probs, lesions, resamples=50)
    assert all(d["difference"] == 0 and d["ci95"] == [0, 0] for d in same.values())


@pytest.mark.parametrize("kind", ["cutmix", "mixup"])
def test_mixing_gives_targets_and_weights_in_the_proportion_the_image_shows(kind):
    import tensorflow as tf

    from training.mixing import mixer

    values = np.linspace(-0.9, 0.9, 7).astype(np.float32)  # class c's image is all values[c]
    class_weight = np.array([3.0, 2.0, 1.5, 6.0, 1.2, 0.2, 5.0], np.float32)
    classes = np.tile(np.arange(7), 4)
    images = np.broadcast_to(values[classes][:, None, None, None], (28, 150, 200, 3)).copy()
    batch = (images, np.eye(7, dtype=np.float32)[classes], class_weight[classes])
    mixed = tf.data.Dataset.from_tensors(batch).map(mixer(kind, share=1.0, seed=1))
    x, y, w = (np.asarray(t) for t in next(iter(mixed)))
    assert np.allclose(y.sum(1), 1, atol=1e-5)
    assert (y.max(1) < 0.999).sum() >= 10  # most images are mixed (a few draw themselves or a weight near 1)
    # what each image shows, the target says (CutMix: up to a box edge's rounding to pixels, < 1% here)
    assert np.allclose(x.mean((1, 2, 3)), y @ values, atol=0.02)
    assert np.allclose(w, y @ class_weight, atol=1e-4)  # and its loss weight follows
    if kind == "cutmix":  # a box of another image: every pixel is one image's or the other's
        assert all(len(np.unique(img.round(4))) <= 2 for img in x)


def test_mixing_leaves_the_rest_of_the_batch_alone_and_refuses_unknown_kinds():
    import tensorflow as tf

    from training.mixing import mixer
    from training.train import Config, _datasets

    assert mixer("cutmix", share=0.0) is None and mixer("none", share=0.5) is None
    with pytest.raises(ValueError, match="mix must be one of"):
        mixer("cutout", share=0.5)
    images = np.random.default_rng(0).uniform(-1, 1, (64, 12, 16, 3)).astype(np.float32)
    targets = np.eye(7, dtype=np.float32)[np.arange(64) % 7]
    mixed = tf.data.Dataset.from_tensors((images, targets, np.ones(64, np.float32))).map(mixer("cutmix", 0.25))
    x, y, _ = (np.asarray(t) for t in next(iter(mixed)))
    untouched = np.array([np.array_equal(a, b) for a, b in zip(x, images, strict=True)])
    assert 0.55 < untouched.mean() < 0.95  # about 3 in 4 stay as they were
    assert np.allclose(y[untouched], targets[untouched], atol=0.02)  # a box under a pixel wide leaves none

    labels = {name: np.arange(16) % 7 for name in ("train", "val", "test")}
    arrays = {name: np.zeros((16, 20, 30, 3), np.uint8) for name in labels}
    for mix, soft in (("none", False), ("mixup", True)):
        cfg = Config(data="", out="", size=(20, 30), batch_size=16, mix=mix, mix_share=1.0)
        train, _ = _datasets(arrays, labels, cfg)
        _, y, _ = (np.asarray(t) for t in next(iter(train)))
        assert (y.max(1) < 0.999).any() == soft
