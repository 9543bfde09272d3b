"""``python -m training --strategy``: the same recipe on several devices or hosts with tf.distribute.

- ``none``: the default strategy (one device), as before.
- ``mirrored``: ``MirroredStrategy`` over every local GPU, or over the logical CPU devices when
  there is no GPU (so CI can check it with two logical CPUs).
- ``multiworker``: ``MultiWorkerMirroredStrategy``, configured by the standard ``TF_CONFIG``
  variable (one process per host, started by the user or a scheduler).

``--batch-size`` stays the global batch: each step splits it across the replicas (per-replica
batch = global batch / replicas) and Keras averages the loss over the global batch, so a run
under a strategy is the same optimisation problem as on one device and the recipe's learning
rates carry over unchanged. Raising the global batch is a separate choice (docs/scaling.md).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .config import STRATEGIES


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name``; create it before any other TensorFlow op.

    (``MultiWorkerMirroredStrategy`` sets up the collective ops when it is created, which
    TensorFlow refuses once the runtime has started.)
    """
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker reads the cluster from TF_CONFIG, which is not set")
        return _multi_worker_strategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, not {name!r}")


def _multi_worker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3's ``fit`` hands it.

    Keras 3 (keras-team/keras#20585) reduces the whole (x, y, weight) sample batch in one call
    and scalar logs along ``axis=0``; TensorFlow's multi-worker ``reduce`` accepts neither. This
    reduces each tensor of the structure alone, a scalar across replicas only: the same result
    ``MirroredStrategy`` gives.
    """
    class MultiWorkerMirrored(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            def one(v):
                rank = self.experimental_local_results(v)[0].shape.rank
                return super(MultiWorkerMirrored, self).reduce(reduce_op, v, axis if rank else None)

            return tf.nest.map_structure(one, value)

    return MultiWorkerMirrored()


def val_predictor(network: keras.Model, strategy: tf.distribute.Strategy) -> Callable[[tf.data.Dataset], np.ndarray]:
    """``network.predict`` for validation scoring, except across workers: there each worker scores alone.

    Keras 3's ``predict`` under ``MultiWorkerMirroredStrategy`` gathers the workers' shards out of
    order, so every worker runs the whole (small) validation set itself, outside the strategy:
    no collective op, the same probabilities everywhere, in the dataset's order.
    """
    if task(strategy)[0] is None:
        return lambda dataset: network.predict(dataset, verbose=0)

    forward = tf.function(lambda x: network(x, training=False), reduce_retracing=True)
    return lambda dataset: np.concatenate([forward(x).numpy() for x in dataset])


def task(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """This process's (task type, task id) in the cluster; (None, 0) off a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The one process that writes the run's results: the chief, else worker 0 (TensorFlow's rule)."""
    task_type, task_id = task(strategy)
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def write_dir(out: Path, strategy: tf.distribute.Strategy) -> Path:
    """Where this process writes: the run folder for the chief, a temporary folder for other workers.

    Every worker must run the same steps (the gradients are all-reduced), so each keeps its own
    state and backups, and only the chief's reach the run folder (TensorFlow's multi-worker
    saving pattern). ``remove_worker_dir`` deletes the temporary one when the run is done.
    """
    if is_chief(strategy):
        return out
    return out / f"workertemp_{task(strategy)[1]}"


def remove_worker_dir(out: Path, strategy: tf.distribute.Strategy) -> None:
    """Delete a non-chief worker's temporary folder once its run is done (the chief's is the run)."""
    if not is_chief(strategy):
        shutil.rmtree(write_dir(out, strategy), ignore_errors=True)


def check_batch(batch_size: int, strategy: tf.distribute.Strategy) -> None:
    """Refuse a global batch that the replicas cannot share equally (the loss would be weighted unevenly)."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"--batch-size {batch_size} (the global batch) must be a multiple of the "
                         f"{replicas} replicas")
    if replicas > 1 or task(strategy)[0] is not None:
        task_type, task_id = task(strategy)
        where = f", {task_type} {task_id}" + (" (chief)" if is_chief(strategy) else "") if task_type else ""
        print(f"{type(strategy).__name__}: {replicas} replicas{where}; global batch {batch_size} = "
              f"{batch_size // replicas} per replica", flush=True)
