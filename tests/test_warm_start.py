"""``--init RUN``: a run that starts from a finished run's weights, refused when they do not fit."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def start(run_with_extra):
    """The session's tiny run as the start, and its recipe (same split) for the run that starts there."""
    from training.config import Config

    cfg = Config(**json.loads((run_with_extra / "config.json").read_text()))
    return run_with_extra, replace(cfg, size=tuple(cfg.size))


def weights(run) -> list[np.ndarray]:
    from training.network import build_network

    config = json.loads((run / "config.json").read_text())
    network = build_network(tuple(config["size"]), weights=None, dropout=config["dropout"])
    network.load_weights(run / "best.weights.h5")
    return network.get_weights()


def test_a_run_starts_from_the_start_s_weights_not_imagenet_s(start, tmp_path, monkeypatch):
    import training.train
    from training.config import recipe_phrases

    run, cfg = start
    monkeypatch.setattr(training.train, "finish_run", lambda out: {})  # scoring and the card are tested elsewhere
    # one fine-tuning epoch at a learning rate of 0: the best weights are whatever the run started from
    still = replace(cfg, head_epochs=0, finetune_epochs=1, warmup_epochs=0, finetune_lr=0.0, patience=None)
    training.train.train(replace(still, out=str(tmp_path / "warm"), init=str(run), run_seed=3))
    training.train.train(replace(still, out=str(tmp_path / "cold"), run_seed=3))
    started, warm, cold = weights(run), weights(tmp_path / "warm"), weights(tmp_path / "cold")
    assert all(np.array_equal(a, b) for a, b in zip(started, warm, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(started, cold, strict=True))
    config = json.loads((tmp_path / "warm" / "config.json").read_text())
    assert f"started from the weights of {run}" in recipe_phrases(config)


def test_a_start_of_another_network_or_split_or_no_run_is_refused(start, tmp_path):
    from training.warm_start import init_weights

    run, cfg = start
    meta = pd.read_csv(run / "split.csv")
    assert init_weights(run, asdict(cfg), meta) == run / "best.weights.h5"
    with pytest.raises(ValueError, match="differs from this run in size"):
        init_weights(run, asdict(replace(cfg, size=(96, 128))), meta)
    with pytest.raises(ValueError, match="batch-norm"):
        init_weights(run, asdict(replace(cfg, train_bn=True)), meta)
    held_out = meta.index[meta.split == "val"][0]
    with pytest.raises(ValueError, match="another split"):  # the start trained on an image this run validates on
        init_weights(run, asdict(cfg), meta.assign(split=meta.split.where(meta.index != held_out, "train")
                                                   .where(meta.index == held_out, meta.split)))
    with pytest.raises(FileNotFoundError, match="finished run folder"):
        init_weights(tmp_path, asdict(cfg), meta)
