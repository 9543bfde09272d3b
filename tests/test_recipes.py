"""The recipe table (training/recipes.py) and `python -m training card`: what each run changed."""

from __future__ import annotations

import json

import pytest


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
