"""A uniform average of fine-tuned runs' weights: one network that serves at one run's cost.

Fine-tuned from the same ImageNet weights, with the same head seed and batch norm frozen at
ImageNet's statistics, runs of one recipe family can stay close enough for their average to be a
model in its own right ("model soups", Wortsman et al., ICML 2022; WiSE-FT, Wortsman et al., CVPR
2022, for its robustness under distribution shift): the cheap form of distilling an ensemble, with
no training and the same serving cost. Whether given runs do is measured like any run, not assumed
(docs/experiments.md has soups that fell below their members).

``python -m training soup runs/A runs/B ... --out runs/NAME`` writes a run folder (weights,
config, split, state) and finishes it as a training run ends (calibration, export, card). A member
is a run folder (its best weights) or a weights file inside one (``runs/A/finetune.weights.h5``, the
last epoch), so one run's epochs can be averaged too (stochastic weight averaging, Izmailov et al.,
UAI 2018: a run's late epochs share a basin, which runs from one initialisation need not).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model.preprocessing import scale

from .averaging import load_average
from .config import SOUP_FILE, Config, before_options, compared_options
from .data import load_arrays
from .evaluate import classification_metrics
from .network import build_network
from .state import RunState

# what the members must share for their weights to be averaged, beside the very same split.csv: the
# network, its input, the initialisation, and the frozen batch-norm statistics (a member that trained them has its own)
SHARED = ("size", "dropout", "colour", "seed", "train_bn")
BEST = "best.weights.h5"


@dataclass(frozen=True)
class Member:
    """One set of weights in a soup: the run folder it belongs to, the file, and the name the card uses."""

    run: Path
    weights: Path
    name: str


def member(path: str | Path) -> Member:
    """``runs/A`` is run A's best weights (named ``A``); ``runs/A/F.weights.h5`` is that file (``A:F``)."""
    path = Path(path)
    if path.name.endswith(".weights.h5"):
        name = path.parent.name if path.name == BEST else f"{path.parent.name}:{path.name.removesuffix('.weights.h5')}"
        return Member(path.parent, path, name)
    return Member(path, path / BEST, path.name)


def check_members(members: list[Member | str | Path]) -> list[dict]:
    """The members' configs, once they are shown to share ``SHARED`` and the very same split."""
    members = [m if isinstance(m, Member) else member(m) for m in members]
    if len(members) < 2:
        raise ValueError("a soup needs at least two members (run folders or weights files)")
    if len({m.weights.resolve() for m in members}) < len(members):
        raise ValueError("a soup's members must be different weights: one was given twice")
    configs = []
    for m in members:
        for path in (m.run / "config.json", m.run / "split.csv", m.weights):
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: is {m.run} a finished run folder?")
        configs.append({**before_options(), **json.loads((m.run / "config.json").read_text())})
    runs = [m.run for m in members]
    for run, config in zip(runs[1:], configs[1:], strict=True):
        differ = [k for k in SHARED if config.get(k) != configs[0].get(k)]
        if differ:
            raise ValueError(f"{run} differs from {runs[0]} in {', '.join(differ)}: their weights do not average")
        if config["train_bn"]:
            raise ValueError(f"{run} trained batch norm: members must keep ImageNet's statistics")
        if (run / "split.csv").read_bytes() != (runs[0] / "split.csv").read_bytes():
            raise ValueError(f"{run} has another split than {runs[0]}: the soup's validation would not be held out")
    return configs


def differing(configs: list[dict], names: list[str]) -> dict:
    """The recipe options the members do not share, each with every member's value."""
    return {k: dict(zip(names, (c.get(k) for c in configs), strict=True)) for k in sorted(compared_options())
            if len({json.dumps(c.get(k)) for c in configs}) > 1}


def make_soup(paths: list[str | Path], out: str | Path) -> Path:
    """A run folder holding the uniform average of the members' weights (``member`` reads each
    path), scored on validation as a training run's best epoch is, ready for ``finish_run``."""
    members, out = [member(p) for p in paths], Path(out)
    configs = check_members(members)
    if out.exists():
        raise FileExistsError(f"{out} exists: a soup is written once")
    first = configs[0]
    network = build_network(tuple(first["size"]), weights=None, dropout=first["dropout"], colour=first["colour"])
    load_average(network, [m.weights for m in members])
    out.mkdir(parents=True)
    network.save_weights(out / BEST)
    (out / "split.csv").write_bytes((members[0].run / "split.csv").read_bytes())
    names = [m.name for m in members]
    runs = list(dict.fromkeys(m.run.resolve() for m in members))  # each run once: its cost and command count once
    # the config is the first member's (the recipe table reads its values); soup.json lists every member's
    config = {**first, "out": str(out), "soup": "+".join(names),
              "command": "python -m training soup " + shlex.join([*map(str, paths), "--out", str(out)])}
    Config(**config)  # one a run could have
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / SOUP_FILE).write_text(json.dumps(
        {"members": names, "weights": "uniform", "files": [str(m.weights) for m in members],
         "differ": differing(configs, names), "runs": len(runs),
         "commands": list(dict.fromkeys(c.get("command") for c in configs))}, indent=2))

    val = pd.read_csv(out / "split.csv").query("split == 'val'")
    images = load_arrays(list(val.path), tuple(first["size"]), first.get("workers", 4), desc="loading val")
    probs = network.predict(scale(images.astype(np.float32)), batch_size=64, verbose=0)
    metrics = classification_metrics(val.label.to_numpy(), probs)
    state = RunState(out / "state.json")
    state.phases_done = ["soup"]
    state.best = {"phase": "soup", "epoch": len(members), "val_accuracy": metrics["accuracy"],
                  "val_balanced_accuracy": metrics["balanced_accuracy"], "val_macro_auc": metrics["macro_auc"]}
    # what the soup cost to make: its runs' training, each run once
    state.seconds = float(sum(json.loads((r / "state.json").read_text()).get("seconds", 0.0) for r in runs
                              if (r / "state.json").is_file()))
    state.save()
    return out
