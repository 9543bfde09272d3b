"""python -m training --strategy: two logical CPUs and two worker processes on CPU, against one device.

TensorFlow fixes its devices when it starts, so each run is a subprocess that first splits the
CPU into logical devices. Each also enables op determinism: parallel ``map`` calls with random
augmentation otherwise draw in a different order on every run, one device or several.
Dropout is 0 here: each replica draws its own masks, so with dropout the curves agree only
statistically (docs/scaling.md), and the test is about the arithmetic of the split batch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT

# The 1-device reference also runs under MirroredStrategy: Keras draws one batch to build a model
# made under any strategy before its first epoch, which moves the shuffled, augmented pipeline on
# by one pass; on the same code path the runs see the same batches and only the replicas differ.
RUNNER = """
import sys
import tensorflow as tf
devices, finish, argv = int(sys.argv[1]), sys.argv[2] == "finish", sys.argv[3:]
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
tf.config.experimental.enable_op_determinism()
import os
import training.train
from training.__main__ import main
if not finish:  # the loss curves are all the comparison needs; scoring and export: the two-worker run
    training.train.finish_run = lambda out: {}
if os.environ.get("CRASH_AFTER"):  # the process dies (no clean-up) once that epoch is saved
    make = training.train._epoch_callback
    def crashing(state, phase, *args):
        callback = make(state, phase, *args)
        saved = callback.on_epoch_end
        def on_epoch_end(epoch, logs=None):
            saved(epoch, logs)
            if f"{phase} {epoch + 1}" == os.environ["CRASH_AFTER"]:
                os._exit(3)
        callback.on_epoch_end = on_epoch_end
        return callback
    training.train._epoch_callback = crashing
main(argv)
"""
TOLERANCE = 1e-4  # relative, per epoch; measured: below 1e-6 (float sums in another order)


def _args(data, out, strategy: str) -> list[str]:
    return ["--data", str(data), "--out", str(out), "--size", "64x80", "--batch-size", "8", "--head-epochs", "1",
            "--finetune-epochs", "1", "--finetune-from", "block_15_expand", "--dropout", "0", "--workers", "2",
            "--resamples", "200", "--strategy", strategy]


def _start(devices: int, finish: bool, args: list[str], log, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(devices), "finish" if finish else "curve", *args],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait(procs: list[subprocess.Popen], logs: list, timeout: float = 900) -> list[str]:
    outputs = []
    for proc, log in zip(procs, logs, strict=True):
        proc.wait(timeout=timeout)
        log.seek(0)
        outputs.append(log.read())
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]
    return outputs


def _curve(run) -> list[tuple[str, int, float, float]]:
    history = json.loads((run / "state.json").read_text())["history"]
    return [(h["phase"], h["epoch"], h["loss"], h["val_loss"]) for h in history]


def _assert_same_curve(a, b) -> None:
    """The same losses up to the interrupted run's crash: the first epoch of each phase."""
    a, b = a[:2], b[:2]
    assert [(p, e) for p, e, *_ in a] == [(p, e) for p, e, *_ in b] == [("head", 1), ("finetune", 1)]
    for (_, _, loss_a, val_a), (_, _, loss_b, val_b) in zip(a, b, strict=True):
        assert loss_b == pytest.approx(loss_a, rel=TOLERANCE) and val_b == pytest.approx(val_a, rel=TOLERANCE)


@pytest.fixture(scope="module")
def mirrored_runs(ham_folder, tmp_path_factory):
    """The tiny run on one device and, beside it, on two logical CPUs (MirroredStrategy), killed after its
    first fine-tuning epoch; then the two-CPU run restarted. One pair of runs for the curve and the resume."""
    root = tmp_path_factory.mktemp("mirrored")
    args = {n: [*_args(ham_folder, root / f"devices{n}", "mirrored"), "--finetune-epochs", "2"]  # the later flag wins
            for n in (1, 2)}
    logs = [open(root / f"{n}.log", "w+") for n in (1, 2)]  # noqa: SIM115 - closed below
    try:
        procs = [_start(1, False, args[1], logs[0]), _start(2, False, args[2], logs[1], {"CRASH_AFTER": "finetune 1"})]
        (one_log,) = _wait(procs[:1], logs[:1])
        procs[1].wait(timeout=900)
        logs[1].seek(0)
        crashed_log = logs[1].read()
        assert procs[1].returncode == 3, crashed_log[-3000:]
    finally:
        for log in logs:
            log.close()
    two = root / "devices2"
    crashed = json.loads((two / "state.json").read_text())["history"]
    backup_left = (two / "backup_finetune").is_dir()
    with open(root / "resumed.log", "w+") as log:
        (resumed_log,) = _wait([_start(2, False, args[2], log)], [log])
    return {1: (root / "devices1", one_log), 2: (two, crashed_log),
            "crashed": (crashed, backup_left), "resumed": resumed_log}


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_gives_the_one_device_loss_curve(mirrored_runs):
    (one, one_log), (two, two_log) = mirrored_runs[1], mirrored_runs[2]
    assert "replicas" not in one_log  # one device: nothing to announce
    assert "MirroredStrategy: 2 replicas; global batch 8 = 4 per replica" in two_log
    _assert_same_curve(_curve(one), _curve(two))
    assert json.loads((two / "config.json").read_text())["strategy"] == "mirrored"


@pytest.mark.slow
def test_two_workers_train_as_one_and_only_the_chief_writes(ham_folder, tmp_path, mirrored_runs):
    """Two processes on 127.0.0.1 (TF_CONFIG each): the two-replica curve, one run folder, one export."""
    out = tmp_path / "run"
    with socket.socket() as a, socket.socket() as b:  # two ports free at once
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        workers = [f"127.0.0.1:{s.getsockname()[1]}" for s in (a, b)]
    logs = [open(tmp_path / f"worker{i}.log", "w+") for i in range(2)]  # noqa: SIM115 - closed below
    try:
        args = [*_args(ham_folder, out, "multiworker"), "--finetune-epochs", "2"]  # the mirrored runs' schedule
        procs = [_start(1, True, args, log, {"TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})})
            for i, log in enumerate(logs)]
        chief_log, worker_log = _wait(procs, logs)
    finally:
        for log in logs:
            log.close()
    assert "2 replicas, worker 0 (chief); global batch 8 = 4 per replica" in chief_log
    assert "2 replicas, worker 1;" in worker_log
    assert '"balanced_accuracy"' in chief_log and '"balanced_accuracy"' not in worker_log  # only the chief scored

    # one run folder: the worker's temporary folder is gone, one state, one export, one card
    assert not list(out.glob("workertemp_*"))
    for name in ("state.json", "best.weights.h5", "metrics.json", "model_card.json"):
        assert len(list(out.rglob(name))) == 1, name
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.tflite")) == ["export/skin_mobilenetv2.tflite"]
    card = json.loads((out / "export/model_card.json").read_text())
    assert card["training"]["config"]["strategy"] == "multiworker"

    # two workers of one replica each: the same steps as two replicas in one process
    _assert_same_curve(_curve(mirrored_runs[2][0]), _curve(out))

    # the chief scored validation on every image in order: its best epoch's loss, recomputed here
    from model.preprocessing import scale
    from training.data import load_arrays
    from training.network import build_network

    split = pd.read_csv(out / "split.csv")
    val = split[split.split == "val"]
    network = build_network((64, 80), weights=None, dropout=0.0)
    network.load_weights(out / "best.weights.h5")
    probs = np.asarray(network(scale(load_arrays(list(val.path), (64, 80), 2).astype(np.float32)), training=False))
    best = json.loads((out / "state.json").read_text())["best"]
    val_loss = -np.log(np.clip(probs[np.arange(len(probs)), val.label.to_numpy()], 1e-7, 1)).mean()
    assert val_loss == pytest.approx(best["val_loss"], rel=1e-4)


@pytest.mark.slow
def test_an_interrupted_mirrored_run_resumes_mid_phase(mirrored_runs):
    """Killed after its first fine-tuning epoch, the run restarts at the second (Keras BackupAndRestore)."""
    out = mirrored_runs[2][0]
    before, backup_left = mirrored_runs["crashed"]
    assert [(h["phase"], h["epoch"]) for h in before] == [("head", 1), ("finetune", 1)]
    assert backup_left
    resumed = mirrored_runs["resumed"]
    assert "[finetune 2]" in resumed and "[finetune 1]" not in resumed and "[head 1]" not in resumed
    after = json.loads((out / "state.json").read_text())["history"]
    assert after[:2] == before and [(h["phase"], h["epoch"]) for h in after[2:]] == [("finetune", 2)]
    assert not (out / "backup_finetune").exists()  # removed once the phase finished
