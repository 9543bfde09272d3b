"""python -m benchmarks.training_speed: fine-tuning images/s on this CPU, float32 beside bfloat16.

The training budget on 2 cores is set by fine-tuning (every MobileNetV2 layer trainable), so
this times that step on random images at the recipe's input size, with Keras' default float32
policy as the baseline and ``mixed_bfloat16`` (bf16 compute, float32 variables) beside it, each
with and without XLA (``jit_compile``). bf16 only pays where the CPU has AVX512-BF16 or AMX; the
table says which flags this CPU has.

``--backends`` instead times the same float32 step under Keras 3's backends (TensorFlow, the
baseline, then JAX and PyTorch), each at its own default ``jit_compile``. Keras fixes its backend
at import, so each runs in a child process; the children are warmed up first and then step in
turn, so a machine shared with other work slows every backend alike. JAX and PyTorch are not in
the requirements (CI does not need them); install the CPU builds to compare:
``pip install jax==0.10.2 torch==2.13.0`` (ask for that exact torch: a bare ``torch`` pulls a
CUDA build). A backend whose package is missing is reported as not installed.

``--teacher A+B+C`` instead times what ``--teach online`` adds to a step: the members' answers for
the same batch (LiteRT, as served), in turn with the float32 step, so that the table gives the cost
of an online-taught epoch against the student's alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

BACKENDS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}  # KERAS_BACKEND -> name
MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # the package each one needs


def cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return ", ".join(f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags) or "none"
    except OSError:
        pass
    return "unknown"


def fine_tuning_step(
    policy: str, jit: bool | str, size: tuple[int, int], batch: int
) -> tuple[Callable[[], object], object]:
    """One ``train_on_batch`` of the whole network on fixed random images, and the model (for its resolved jit)."""
    import keras

    from training.network import build_network

    keras.mixed_precision.set_global_policy(policy)
    network = build_network(size, weights=None)
    network.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy", jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch, *size, 3)).astype(np.float32)
    y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, batch)]
    return lambda: network.train_on_batch(x, y), network


def timed_step(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def images_per_second(policy: str, jit: bool, size: tuple[int, int], batch: int, steps: int) -> float:
    """Median images/s of ``steps`` fine-tuning steps after two warm-up steps."""
    import keras

    try:
        step, _ = fine_tuning_step(policy, jit, size, batch)
        for _ in range(2):
            step()
        return batch / float(np.median([timed_step(step) for _ in range(steps)]))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def teacher_cost(teacher: str, size: tuple[int, int], batch: int, steps: int) -> list[tuple[str, float]]:
    """Median images/s of the student's step, the teacher's answers for its batch, and both in turn."""
    from training.distill import answerer

    step, _ = fine_tuning_step("float32", False, size, batch)
    answer = answerer(teacher)
    x = np.random.default_rng(1).uniform(-1, 1, (batch, *size, 3)).astype(np.float32)
    for _ in range(2):
        step(), answer(x)
    student, taught = [], []
    for _ in range(steps):
        student.append(timed_step(step))
        taught.append(timed_step(lambda: answer(x)))
    both = np.add(student, taught)
    return [(name, batch / float(np.median(t))) for name, t in
            (("student step", student), ("teacher's answers", taught), ("both, one after the other", both))]


def serve_backend(backend: str, size: tuple[int, int], batch: int) -> None:
    """Child process: build and warm up under ``backend``, then time one step per line read from stdin.

    Replies are JSON lines on stdout: first the versions and the resolved ``jit_compile`` (or an
    ``error``), then one step's seconds per request, so the parent can interleave backends.
    """
    if importlib.util.find_spec(MODULES[backend]) is None:
        print(json.dumps({"error": "not installed"}), flush=True)
        return
    os.environ["KERAS_BACKEND"] = backend
    import keras

    assert keras.backend.backend() == backend, f"Keras chose {keras.backend.backend()}, not {backend}"
    step, network = fine_tuning_step("float32", "auto", size, batch)
    for _ in range(2):
        step()
    module = importlib.import_module(MODULES[backend])
    print(json.dumps({"keras": keras.__version__, "version": module.__version__,
                      "jit_compile": bool(network.jit_compile)}), flush=True)
    for _ in sys.stdin:
        print(json.dumps({"seconds": timed_step(step)}), flush=True)


def start_child(backend: str, size: tuple[int, int], batch: int) -> tuple[subprocess.Popen | None, dict]:
    """A warmed-up child for ``backend`` and its first reply; no process where the package is missing."""
    if importlib.util.find_spec(MODULES[backend]) is None:
        return None, {"error": "not installed"}
    env = {**os.environ, "KERAS_BACKEND": backend}
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.training_speed", "--serve", backend, "--size", "x".join(map(str, size)),
         "--batch-size", str(batch)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env)
    line = child.stdout.readline()
    if not line:
        err = child.stderr.read().strip().splitlines()
        child.wait()
        return None, {"error": "failed: " + (err[-1] if err else f"exit {child.returncode}")}
    reply = json.loads(line)
    if "error" in reply:
        child.wait()
        return None, reply
    return child, reply


def compare_backends(backends: list[str], size: tuple[int, int], batch: int, steps: int) -> list[dict]:
    """Per backend: its first reply plus the median images/s of ``steps`` steps taken in turn with the others.

    Warm-up (and JAX's compile) happens before any timing; then round k times step k of every
    backend back to back, so load from other processes lands on all of them alike.
    """
    children, rows = {}, {}
    try:
        for backend in backends:
            children[backend], rows[backend] = start_child(backend, size, batch)
        times: dict[str, list[float]] = {b: [] for b, c in children.items() if c}
        for _ in range(steps):
            for backend in times:
                child = children[backend]
                child.stdin.write("step\n")
                child.stdin.flush()
                times[backend].append(json.loads(child.stdout.readline())["seconds"])
        for backend, seconds in times.items():
            rows[backend]["images_per_s"] = batch / float(np.median(seconds))
    finally:
        for child in children.values():
            if child:
                child.stdin.close()
                child.wait()
    return [{"backend": b, **rows[b]} for b in backends]


def backend_table(rows: list[dict]) -> str:
    """Markdown rows; speed relative to TensorFlow's where TensorFlow ran."""
    base = next((r.get("images_per_s") for r in rows if r["backend"] == "tensorflow"), None)
    lines = ["| backend | version | jit_compile | images/s | vs TensorFlow |", "|---|---|---|---|---|"]
    for r in rows:
        name = BACKENDS[r["backend"]]
        if "images_per_s" not in r:
            lines.append(f"| {name} | {r.get('error', 'failed')} | - | - | - |")
            continue
        speed = r["images_per_s"]
        ratio = f"{speed / base:.2f}x" if base else "-"
        lines.append(f"| {name} | {r['version']} | {r['jit_compile']} | {speed:.1f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="150x200", help="input HxW (default: the recipe's 150x200)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument(
        "--backends", nargs="?", const=",".join(BACKENDS), metavar="LIST",
        help=f"instead of the policy table, compare Keras backends (default {','.join(BACKENDS)}); "
             "JAX and PyTorch: pip install jax==0.10.2 torch==2.13.0 (exactly that torch: CPU build)")
    parser.add_argument("--teacher", metavar="A+B+C", help="instead of the policy table, time the online teacher's "
                        "answers (--teach online) beside the student's step")
    parser.add_argument("--serve", choices=BACKENDS, help=argparse.SUPPRESS)  # the child side of --backends
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    if args.serve:
        return serve_backend(args.serve, size, args.batch_size)
    if args.teacher:
        print(f"fine-tuning MobileNetV2 at {args.size}, batch {args.batch_size}, float32, and the teacher "
              f"{args.teacher} answering for the batch; median of {args.steps} steps in turn; {os.cpu_count()} cores")
        rows = teacher_cost(args.teacher, size, args.batch_size, args.steps)
        base = rows[0][1]
        print("| what | images/s | time vs the student's step |\n|---|---|---|")
        for name, speed in rows:
            print(f"| {name} | {speed:.1f} | {base / speed:.2f}x |")
        return
    if args.backends:
        backends = args.backends.split(",")
        if unknown := set(backends) - set(BACKENDS):
            parser.error(f"unknown backend(s) {', '.join(sorted(unknown))}; choose from {', '.join(BACKENDS)}")
        print(f"fine-tuning MobileNetV2 at {args.size}, batch {args.batch_size}, float32, median of {args.steps} "
              f"steps taken in turn across backends after 2 warm-up steps; {os.cpu_count()} cores")
        rows = compare_backends(backends, size, args.batch_size, args.steps)
        keras_versions = sorted({r["keras"] for r in rows if "keras" in r})
        print(f"Keras {', '.join(keras_versions) or '?'}; jit_compile is each backend's default on this CPU")
        print(backend_table(rows))
        return
    print(f"fine-tuning MobileNetV2 at {args.size}, batch {args.batch_size}, median of {args.steps} steps; "
          f"CPU bf16 flags: {cpu_flags()}; {os.cpu_count()} cores")
    rows = []
    for policy, jit in (("float32", False), ("float32", True), ("mixed_bfloat16", False), ("mixed_bfloat16", True)):
        rows.append((policy, jit, images_per_second(policy, jit, size, args.batch_size, args.steps)))
    base = rows[0][2]
    print("| policy | jit_compile | images/s | vs float32 |\n|---|---|---|---|")
    for policy, jit, speed in rows:
        print(f"| {policy} | {jit} | {speed:.1f} | {speed / base:.2f}x |")


if __name__ == "__main__":
    main()
