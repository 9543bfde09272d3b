"""python -m benchmarks.training_speed: fine-tuning images/s on this CPU, float32 beside bfloat16.

The training budget on 2 cores is set by fine-tuning (every MobileNetV2 layer trainable), so
this times that step on random images at the recipe's input size, with Keras' default float32
policy as the baseline and ``mixed_bfloat16`` (bf16 compute, float32 variables) beside it, each
with and without XLA (``jit_compile``). bf16 only pays where the CPU has AVX512-BF16 or AMX; the
table says which flags this CPU has.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return ", ".join(f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags) or "none"
    except OSError:
        pass
    return "unknown"


def images_per_second(policy: str, jit: bool, size: tuple[int, int], batch: int, steps: int) -> float:
    """Median images/s of ``steps`` fine-tuning steps after two warm-up steps."""
    import keras

    from model.network import build_network

    keras.mixed_precision.set_global_policy(policy)
    try:
        network = build_network(size, weights=None)
        network.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy", jit_compile=jit)
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (batch, *size, 3)).astype(np.float32)
        y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, batch)]
        for _ in range(2):
            network.train_on_batch(x, y)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            network.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
        return batch / float(np.median(times))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="150x200", help="input HxW (default: the recipe's 150x200)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
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
