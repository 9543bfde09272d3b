"""``python -m model predict ... --engine ray [--address ADDR]``: the local CLI's CSV, scored on Ray Data.

The paths are found on the driver as the local engine finds them; Ray Data spreads them in
batches over a pool of actors, each holding one LiteRT classifier (loaded once, not per
batch), which decode and score with the local engine's own code; the driver writes the rows
in input order as they stream back. Without ``--address`` a local Ray instance is started on
this machine's cores; with it the job joins a running cluster. The ``model`` package (its code
and the shipped model) travels with the job (Ray's ``runtime_env``), so the cluster's nodes need
only requirements.txt installed, and to reach the image paths (a shared filesystem).

Ray is an optional extra (requirements-scale.txt): only this module imports it.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from .results import ERROR, EXTRA, HEADER, decode, score_rows
from .runtime import MAX_BATCH, load_classifier


class Scorer:
    """A Ray Data actor: one classifier, loaded once; a batch of paths in, their CSV rows (or errors) out."""

    def __init__(self, model: str | None, threads: int):
        self.clf = load_classifier(model, num_threads=threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        decoded = [decode(Path(p), self.clf.input_size) for p in batch["path"]]
        good = [i for i, d in enumerate(decoded) if not isinstance(d, str)]
        rows: list[list[str]] = [[] for _ in decoded]
        if good:
            _, scored = score_rows(self.clf, [decoded[i] for i in good])
            for i, row in zip(good, scored, strict=True):
                rows[i] = [str(v) for v in row]
        column = np.empty(len(rows), dtype=object)
        column[:] = rows
        return {
            "path": batch["path"],
            "error": np.array([d if isinstance(d, str) else "" for d in decoded], dtype=object),
            "row": column,
        }


def predict_files_ray(paths: list[Path], out: TextIO, model: str | None = None, address: str | None = None,
                      threads: int = 1, progress: bool = True) -> int:
    """Write one CSV row per file, in the order of ``paths``; returns how many images were classified.

    The local engine's CSV (model/cli.py ``predict_files``): an unreadable file gets a row with
    empty values and its reason in ``error``, and a line on stderr; no paths, a header-only CSV.

    Uses the Ray instance this process is already connected to, else starts a local one
    (``address`` None) or joins the cluster at ``address`` (Ray's forms: "HOST:PORT", "auto" for
    the one ``ray start`` made here, "ray://HOST:PORT"). ``threads``: LiteRT threads (and CPUs) per actor.
    """
    writer = csv.writer(out)
    writer.writerow(HEADER + EXTRA + [ERROR])
    if not paths:  # nothing to score: no Ray started for a header-only CSV
        return 0
    if address is None and "ray" not in sys.modules:
        # A local instance serves this command alone: Ray's local-only mode (meant for macOS and
        # Windows, read when Ray is imported) keeps it on 127.0.0.1 instead of the network's address.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray  # here, not at the top: after the variable above, which Ray reads when it is imported

    started = not ray.is_initialized()
    if started:  # "local": a new instance even when another one runs here (Ray's default would join it)
        runtime_env = {"py_modules": [str(Path(__file__).resolve().parent)]} if address else None
        ray.init(address=address or "local", runtime_env=runtime_env, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # rows in input order, as the local engine writes them
        context.enable_progress_bars = progress
        cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = max(1, cpus // threads)
        print(f"Ray {'started' if started and not address else 'joined'} at {ray.get_runtime_context().gcs_address}: "
              f"{cpus} CPUs, up to {actors} actors of {threads} LiteRT thread(s)", file=sys.stderr)
        scored = ray.data.from_items([{"path": str(p)} for p in paths]).map_batches(
            Scorer, fn_constructor_args=(model, threads), batch_size=MAX_BATCH, batch_format="numpy",
            num_cpus=threads, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
        )
        blank = [""] * (len(HEADER) - 1 + len(EXTRA))
        written = 0
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            for path, error, row in zip(batch["path"], batch["error"], batch["row"], strict=True):
                if error:
                    print(f"skipped {path}: {error}", file=sys.stderr)
                    writer.writerow([path, *blank, error])
                    continue
                writer.writerow([path, *row, ""])
                written += 1
        return written
    finally:
        if started:
            ray.shutdown()
