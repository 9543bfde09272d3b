"""Uniform weight averages: of runs (``python -m training soup``) or of one run's late epochs
(``--average-from``, stochastic weight averaging, Izmailov et al., UAI 2018).

Pure numpy over Keras ``get_weights()`` lists, so the two callers share it without importing each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def average_weights(members: list[list[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of each variable over the members (all with the same variables)."""
    shapes = [[w.shape for w in m] for m in members]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("the members' networks differ: their variables have different shapes")
    return [np.mean(np.stack(ws), axis=0).astype(ws[0].dtype) for ws in zip(*members, strict=True)]


def load_average(network, files: list[Path]) -> None:
    """Set ``network``'s weights to the uniform average of the weights files (each of that network)."""
    members = []
    for path in files:
        network.load_weights(path)
        members.append(network.get_weights())
    network.set_weights(average_weights(members))
