"""The replicates kept in the repository: finished runs that a later judgement needs (docs/selection-rule.md).

A run folder does not outlive a session here, so each finished replicate keeps its LiteRT file and card
under replicates/<run>/, listed in replicates/README.md. None is served: the app serves model/shipped/.
"""

from __future__ import annotations

import re

import numpy as np

from model import load_classifier
from tests.conftest import ROOT

FOLDER = ROOT / "replicates"


def _listed() -> dict[str, tuple[str, int]]:
    """README rows: folder -> (command, run seed)."""
    rows = re.findall(r"^\| `(\w+)/` \| `([^`]+)` \| (-?\d+) \|", (FOLDER / "README.md").read_text(), flags=re.M)
    return {name: (command, int(seed)) for name, command, seed in rows}


def test_every_replicate_is_listed_loads_and_its_card_names_its_command_and_seed(example_image):
    kept = sorted(p.name for p in FOLDER.iterdir() if p.is_dir())
    listed = _listed()
    assert kept and sorted(listed) == kept
    for name in kept:
        clf = load_classifier(FOLDER / name)  # checks the file against the SHA-256 in its card
        training = clf.card()["training"]
        assert (training["command"], training["config"]["run_seed"]) == listed[name], name
        probs = clf.predict([example_image])
        assert probs.shape == (1, 7) and np.isclose(probs.sum(), 1, atol=1e-4)
