"""The rule from v35 on: recipes judged over their runs on ISIC 2018 test half A, with two-level intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.labels import CLASSES


def _runs(labels: np.ndarray, rights: list[float], seed: int) -> np.ndarray:
    """(runs, N, classes) probabilities; run r has the true class on top for a share rights[r] of images."""
    rng = np.random.default_rng(seed)
    out = []
    for right in rights:
        probs = rng.dirichlet(np.ones(7), len(labels)).astype(np.float32) * 0.5
        hit = rng.random(len(labels)) < right
        probs[hit, labels[hit]] += 1.0
        out.append(probs / probs.sum(1, keepdims=True))
    return np.stack(out)


def test_a_recipe_is_its_runs_mean_and_a_better_recipe_has_an_interval_above_zero():
    from training.external import STATISTICS
    from training.selection.judge import recipe_difference

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 400)
    groups = np.arange(400) // 2  # two images a lesion
    base, better = _runs(labels, [0.5, 0.55, 0.45], 1), _runs(labels, [0.8, 0.85], 2)
    statistic = STATISTICS["balanced_accuracy"]
    d = recipe_difference(labels, groups, base, better, statistic, resamples=200)
    assert d["baseline"] == pytest.approx(np.mean([statistic(labels, p) for p in base]))
    assert len(d["baseline_runs"]) == 3 and len(d["candidate_runs"]) == 2
    assert d["difference"] == pytest.approx(d["candidate"] - d["baseline"]) and d["difference"] > 0.2
    assert 0 < d["ci95"][0] < d["difference"] < d["ci95"][1]
    same = recipe_difference(labels, groups, base, base, statistic, resamples=200)
    assert same["difference"] == 0 and same["ci95"][0] < 0 < same["ci95"][1]


def test_the_interval_widens_when_a_recipe_s_runs_disagree():
    """Resampling runs is what makes one lucky draw unable to carry a recipe."""
    from training.external import STATISTICS
    from training.selection.judge import recipe_difference

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, 400)
    base = _runs(labels, [0.6, 0.6], 4)
    steady, erratic = _runs(labels, [0.7, 0.7], 5), _runs(labels, [0.95, 0.45], 6)
    statistic = STATISTICS["balanced_accuracy"]
    width = {name: np.diff(recipe_difference(labels, np.arange(400), base, runs, statistic, resamples=300)["ci95"])[0]
             for name, runs in (("steady", steady), ("erratic", erratic))}
    assert width["erratic"] > 2 * width["steady"]


def test_judge_refuses_a_recipe_against_itself_and_caches_each_model_s_answers(run_with_extra, shared_data, tmp_path,
                                                                             monkeypatch, capsys):
    from training.__main__ import main as training_cli
    from training.selection import judge as judge_module

    export = str(run_with_extra / "export")
    out, cache = tmp_path / "verdict.json", tmp_path / "cache"
    training_cli(["judge", "--baseline", export, "--candidate", export, f"{export}+{export}", "--data",
                  str(shared_data / "ham10000"), "--cache", str(cache), "--resamples", "100", "--out", str(out)])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert not result["passes"] and "does not pass" in printed
    primary = result["differences"]["isic2018_test_a/balanced_accuracy"]
    assert primary["difference"] == pytest.approx(0, abs=1e-9)  # a model and its mean with itself: same answers
    assert len(primary["candidate_runs"]) == 2 and primary["ci95"][0] <= 0 <= primary["ci95"][1]
    # the run trained on ISIC 2017's train part: that set is reported, never a guard
    assert not result["isic2017_counted"] and not any(k.startswith("isic2017/") for k in result["differences"])
    assert {"ham_val/melanoma_recall", "isic2018_test_a/melanoma_recall", "isic2018_val/rule_balanced_accuracy"} <= set(
        result["differences"])
    assert len(list(cache.glob("*.npy"))) == 2 * 4  # two models (the export, the ensemble) x four sets

    def no_scoring(*args, **kwargs):
        raise AssertionError("a cached model was scored again")

    monkeypatch.setattr(judge_module, "predict_files", no_scoring)
    again = judge_module.judge([export], [export], shared_data / "ham10000", cache=cache, resamples=100)
    assert again["differences"]["isic2018_test_a/balanced_accuracy"]["baseline"] == primary["baseline"]


def test_judge_needs_the_primary_set(run_with_extra, tmp_path):
    from conftest import make_ham_folder

    from training.selection.judge import judge

    data = tmp_path / "data"

    make_ham_folder(data / "ham10000")
    export = str(run_with_extra / "export")
    with pytest.raises(FileNotFoundError, match="isic2018_test_a"):
        judge([export], [export], data / "ham10000", cache=None, resamples=10)


def test_half_a_is_resampled_by_lesion(shared_data):
    from training.external import validation_sets

    test_a = [s for s in validation_sets(shared_data / "ham10000") if s.name == "isic2018_test_a"][0]
    assert test_a.grouped_by == "lesions" and len(set(test_a.groups)) == len(test_a.paths) // 2
    assert set(CLASSES[k] for k in test_a.labels) == set(CLASSES)


def test_a_recorded_verdict_shows_in_the_card(run_with_extra, shared_data, tmp_path):
    import shutil

    from training.__main__ import main as training_cli

    export = tmp_path / "export"
    shutil.copytree(run_with_extra / "export", export)
    training_cli(["judge", "--baseline", str(export), "--candidate", str(export), "--data",
                  str(shared_data / "ham10000"), "--cache", str(tmp_path / "cache"), "--resamples", "50",
                  "--record", str(export), "itself"])
    card = json.loads((export / "model_card.json").read_text())
    assert not card["judged"]["itself"]["passes"]
    markdown = (export / "MODEL_CARD.md").read_text()
    assert "## Recipes judged on ISIC 2018 test half A" in markdown and "**itself**" in markdown
    assert "| isic2018_test_a/balanced_accuracy |" in markdown


def test_isic2017_is_no_guard_when_the_baseline_trained_on_its_train_part(run_with_extra, shared_data, tmp_path,
                                                                         monkeypatch):
    from training.selection import judge as judge_module

    export = str(run_with_extra / "export")
    baseline = f"{export}+{export}"  # the same answers under another name: only the baseline "trained on it"
    monkeypatch.setattr(judge_module, "trains_on_isic2017", lambda e: e == baseline)
    result = judge_module.judge([baseline], [export], shared_data / "ham10000", cache=tmp_path, resamples=20)
    assert not result["isic2017_counted"] and "isic2017/balanced_accuracy" not in result["differences"]
    monkeypatch.setattr(judge_module, "trains_on_isic2017", lambda e: False)
    result = judge_module.judge([baseline], [export], shared_data / "ham10000", cache=tmp_path, resamples=20)
    assert result["isic2017_counted"] and "isic2017/balanced_accuracy" in result["differences"]
