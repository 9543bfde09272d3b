"""One tiny run of the whole training path (training/train.py), then what each step made of it.

The run trains once per module (``tiny_run``); ``evaluated`` scores it again beside an earlier
recipe. Tests that rewrite a card work on a copy of the export (``export_copy``), so each can
run alone and in any order.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.card import RUN_FIGURES as FIGURES  # what a run draws and its export ships

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(ham_folder, tmp_path_factory):
    """(run folder, its Config, the card ``train`` returned, the state right after training)."""
    from training.train import Config, train

    out = tmp_path_factory.mktemp("tiny") / "run"
    cfg = Config(data=str(ham_folder), out=str(out), size=(64, 80), batch_size=8, head_epochs=1,
                 finetune_epochs=1, finetune_from="block_15_expand", workers=2, resamples=200)
    card = train(cfg)
    return out, cfg, card, json.loads((out / "state.json").read_text())


@pytest.fixture(scope="module")
def evaluated(tiny_run):
    """``python -m training evaluate``'s card for the run, beside an earlier recipe and a colour probe."""
    from training.finish import finish_run

    out, _, card, _ = tiny_run
    old_config = {**json.loads((out / "config.json").read_text()), "finetune_lr": 1.0}
    old_card = {"version": "old", "training": {"config": old_config, "best_epoch": card["training"]["best_epoch"]}}
    (out.parent / "old_card.json").write_text(json.dumps(old_card))
    probe = {"results": {"none": {"balanced_accuracy": 0.5, "macro_auc": 0.8, "accuracy": 0.6}}}
    (out.parent / "probe.json").write_text(json.dumps(probe))
    return finish_run(out, [out.parent / "old_card.json"], out.parent / "probe.json"), probe


@pytest.fixture
def export_copy(evaluated, tiny_run, tmp_path) -> Path:
    """The evaluated run's export, copied: the studies measure it from the export alone."""
    return Path(shutil.copytree(tiny_run[0] / "export", tmp_path / "export"))


def test_a_run_writes_its_split_figures_export_and_card(tiny_run):
    from model import load_classifier

    out, _, card, state = tiny_run
    assert [row["run"] for row in card["ablation"]] == ["run"]  # alone: no earlier run to compare
    assert set(card["test_time_augmentation"]) >= {"val_balanced_accuracy_single", "val_balanced_accuracy_4_flips"}
    for name in ("split.csv", "state.json", "metrics.json", *FIGURES, *(f"export/{f}" for f in FIGURES),
                 "export/skin_mobilenetv2.keras", "export/skin_mobilenetv2.tflite", "export/model_card.json",
                 "export/MODEL_CARD.md"):
        assert (out / name).is_file(), name
    for name in FIGURES:  # the card links every figure it ships
        assert f"({name})" in (out / "export/MODEL_CARD.md").read_text(), name
    assert card["input_size"] == {"height": 64, "width": 80}
    assert card["litert_vs_keras"]["max_abs_diff_probs"] < 1e-4
    assert 0 <= card["metrics"]["test"]["balanced_accuracy"] <= 1
    assert 0 <= card["malignant_operating_point"]["threshold"] <= 1
    assert [h["phase"] for h in state["history"]] == ["head", "finetune"]
    probs = load_classifier(out / "export").predict([np.zeros((150, 200, 3), np.uint8)])
    assert probs.shape == (1, 7) and abs(probs.sum() - 1) < 1e-5


def test_the_split_keeps_lesions_together_and_the_grid_shows_only_misclassified_test_images(tiny_run):
    out = tiny_run[0]
    split = pd.read_csv(out / "split.csv")
    assert (split.groupby("lesion_id").split.nunique() == 1).all()
    shown = json.loads((out / "metrics.json").read_text())["test"]["misclassified_shown"]
    test_probs = np.load(out / "test_probs.npy")
    test_part = split[split.split == "test"].reset_index(drop=True)
    wrong = set(test_part.image_id[test_probs.argmax(1) != test_part.label])
    assert shown and set(shown) <= wrong


def test_a_finished_run_resumes_without_training_again_and_gives_the_same_figures(tiny_run, tmp_path):
    from dataclasses import replace

    from model.runtime import LITERT_FILE
    from training.export import holds
    from training.train import train

    out, cfg, card, state = tiny_run
    out = Path(shutil.copytree(out, tmp_path / "run"))  # resuming rewrites the card: the module's run stays
    tflite = out / "export" / LITERT_FILE
    converted = tflite.stat().st_mtime_ns
    again = train(replace(cfg, out=str(out)))
    assert json.loads((out / "state.json").read_text())["history"] == state["history"]
    assert again["metrics"]["test"] == card["metrics"]["test"]
    # the same weights: the export's model files are kept, not converted again
    assert again["exported_from"] == card["exported_from"] and tflite.stat().st_mtime_ns == converted
    assert holds(out / "export", card["exported_from"])
    assert not holds(out / "export", {**card["exported_from"], "temperature": 2.0})  # other weights: convert
    tflite.write_bytes(tflite.read_bytes() + b"\0")  # a changed file is not the one the card records
    assert not holds(out / "export", card["exported_from"])


def test_evaluate_beside_an_earlier_recipe_names_what_differed(evaluated, tiny_run):
    compared, probe = evaluated
    markdown = (tiny_run[0] / "export/MODEL_CARD.md").read_text()
    assert compared["colour_probe"] == probe["results"]
    assert "| none | 0.500 | 0.800 |" in markdown
    assert [r["run"] for r in compared["ablation"]] == ["run", "old"]
    assert compared["ablation"][1]["differs"] == {"finetune_lr": 1.0}
    assert "finetune_lr=1.0" in markdown


def test_the_flag_recalibrated_from_the_export_alone_gives_the_runs_figures(evaluated, export_copy, ham_folder):
    from training.studies.flags import recalibrate

    compared, _ = evaluated
    before = json.loads((export_copy / "model_card.json").read_text())
    tflite = (export_copy / "skin_mobilenetv2.tflite").read_bytes()
    assert "detail_threshold" in before["not_dermoscopic"] and "ood" not in before
    # a card written before the flag had one name: its stale "ood" section is replaced under the new name
    before["ood"] = before.pop("not_dermoscopic") | {"threshold": 123.0}
    (export_copy / "model_card.json").write_text(json.dumps(before))
    section = recalibrate(export_copy, ham_folder)
    after = json.loads((export_copy / "model_card.json").read_text())
    assert section == pytest.approx(compared["not_dermoscopic"]) and after["not_dermoscopic"] == section
    assert "ood" not in after
    assert {k: v for k, v in after.items() if k != "not_dermoscopic"} == {k: v for k, v in before.items()
                                                                          if k != "ood"}
    assert (export_copy / "skin_mobilenetv2.tflite").read_bytes() == tflite
    with pytest.raises(ValueError, match="images"):
        recalibrate(export_copy, ham_folder, seed=1)  # another split: refused, not silently used


def test_the_robustness_table_is_in_the_card_and_measured_again_from_the_export(evaluated, export_copy,
                                                                                 ham_folder):
    from training.__main__ import main as training_cli
    from training.studies.robustness import SHIFTS

    compared, _ = evaluated
    assert [r["shift"] for r in compared["robustness"]["test"]] == list(SHIFTS)
    assert "Robustness to another clinic's images" in (export_copy / "MODEL_CARD.md").read_text()
    tflite = (export_copy / "skin_mobilenetv2.tflite").read_bytes()
    stale = json.loads((export_copy / "model_card.json").read_text())
    (export_copy / "model_card.json").write_text(json.dumps({k: v for k, v in stale.items() if k != "robustness"}))
    training_cli(["robustness", str(export_copy), "--data", str(ham_folder)])
    measured = json.loads((export_copy / "model_card.json").read_text())["robustness"]
    assert measured == pytest.approx(compared["robustness"])
    assert (export_copy / "skin_mobilenetv2.tflite").read_bytes() == tflite


def test_intervals_are_in_the_card_and_measured_again_from_the_export(evaluated, export_copy, ham_folder):
    from training.__main__ import main as training_cli

    compared, _ = evaluated
    ci = compared["metrics"]["test"]["ci95"]
    assert set(ci) >= {"balanced_accuracy", "accuracy", "macro_auc", "melanoma_recall", "ece",
                       "malignant_sensitivity", "malignant_specificity"}
    low, high = ci["balanced_accuracy"]
    assert low <= compared["metrics"]["test"]["balanced_accuracy"] <= high
    assert "test 95% interval" in (export_copy / "MODEL_CARD.md").read_text()
    stale = json.loads((export_copy / "model_card.json").read_text())
    for part in stale["metrics"].values():
        del part["ci95"]
    (export_copy / "model_card.json").write_text(json.dumps(stale))
    training_cli(["intervals", str(export_copy), "--data", str(ham_folder)])
    remeasured = json.loads((export_copy / "model_card.json").read_text())["metrics"]["test"]["ci95"]
    assert remeasured["balanced_accuracy"] == pytest.approx(ci["balanced_accuracy"], abs=1e-3)


def test_explanations_are_scored_from_the_export_into_its_card_and_nothing_else(export_copy, ham_folder):
    from training.__main__ import main as training_cli

    before = json.loads((export_copy / "model_card.json").read_text())
    tflite = (export_copy / "skin_mobilenetv2.tflite").read_bytes()
    training_cli(["explanations", str(export_copy), "--data", str(ham_folder), "--images", "3"])
    after = json.loads((export_copy / "model_card.json").read_text())
    assert {k: v for k, v in after.items() if k != "explanations"} == before
    measured = after["explanations"]
    for split in ("val", "test"):
        assert 0 < measured[split]["images"] <= 3
        for method in ("Grad-CAM", "LIME", "centre prior", "random"):
            scores = measured[split][method]
            assert all(0 <= scores[m] <= 1 for m in ("pointing_hit", "energy_in_box", "deletion_auc", "insertion_auc"))
            assert scores["ci95"]["deletion_auc"][0] <= scores["deletion_auc"] <= scores["ci95"]["deletion_auc"][1]
    assert "How far the explanations can be trusted" in (export_copy / "MODEL_CARD.md").read_text()
    assert (export_copy / measured["figure"]).is_file()
    per_image = pd.read_csv(export_copy / measured["per_image"])
    assert len(per_image) == 4 * (measured["val"]["images"] + measured["test"]["images"])
    test_rows = per_image[per_image.split == "test"]
    for method in ("Grad-CAM", "LIME"):  # the card's means and paired differences come from the per-image rows
        mine, centre = (test_rows[test_rows.method == m].deletion_auc.to_numpy() for m in (method, "centre prior"))
        assert measured["test"][method]["deletion_auc"] == pytest.approx(mine.mean(), abs=1e-4)
        paired = measured["test"][method]["minus_centre_prior"]["deletion_auc"]
        assert paired["difference"] == pytest.approx((mine - centre).mean(), abs=1e-4)
    assert (export_copy / "skin_mobilenetv2.tflite").read_bytes() == tflite


def test_a_run_compared_with_itself_differs_by_nothing(tiny_run, capsys):
    from training.__main__ import main as training_cli

    out = tiny_run[0]
    training_cli(["compare", str(out), str(out), "--split", "test"])
    assert "balanced_accuracy +0.000 (+0.000 to +0.000)" in capsys.readouterr().out


def test_a_replicate_keeps_the_split_and_draws_other_weights(tiny_run, tmp_path, monkeypatch):
    """--run-seed: the recipe's runs are judged on one lesion split, so only training draws differ."""
    from dataclasses import replace

    import training.train
    from training.network import build_network

    out, cfg, card, _ = tiny_run
    assert cfg.training_seed == cfg.seed == 0 and replace(cfg, run_seed=3).training_seed == 3
    replicate = tmp_path / "replicate"
    monkeypatch.setattr(training.train, "finish_run", lambda out: {})  # the weights are what differ: no scoring
    training.train.train(replace(cfg, out=str(replicate), run_seed=1, finetune_epochs=0))  # the head alone differs
    assert (replicate / "split.csv").read_text() == (out / "split.csv").read_text()
    assert json.loads((replicate / "config.json").read_text())["run_seed"] == 1

    def weights(run):
        network = build_network(cfg.size, weights=None)
        network.load_weights(run / "best.weights.h5")
        return network.get_weights()

    ours, theirs = weights(replicate), weights(out)
    assert [w.shape for w in ours] == [w.shape for w in theirs]
    assert any(not np.allclose(a, b) for a, b in zip(ours, theirs, strict=True))


def test_an_export_unpacked_into_a_run_folder_is_re_carded_with_the_same_figures(evaluated, export_copy, ham_folder,
                                                                                tmp_path):
    """`python -m training unpack`: a shipped model whose run folder is gone is re-scored by today's code."""
    from training.__main__ import main as training_cli
    from training.finish import finish_run

    before = json.loads((export_copy / "model_card.json").read_text())
    run = tmp_path / "unpacked"
    training_cli(["unpack", str(export_copy), "--data", str(ham_folder), "--out", str(run)])
    assert pd.read_csv(run / "split.csv").groupby("split").size().to_dict() == before["data"]["images"]
    card = finish_run(run)
    assert card["temperature"] == pytest.approx(before["temperature"], rel=1e-4)
    for split in ("val", "test"):
        for figure in ("balanced_accuracy", "macro_auc", "accuracy"):
            assert card["metrics"][split][figure] == pytest.approx(before["metrics"][split][figure], abs=1e-6)
    assert card["training"]["best_epoch"] == before["training"]["best_epoch"]
    with pytest.raises(FileExistsError):  # never over a run folder that exists
        training_cli(["unpack", str(export_copy), "--data", str(ham_folder), "--out", str(run)])
