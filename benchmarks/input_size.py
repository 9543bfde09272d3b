"""python -m benchmarks.input_size 192x256 DIR: an export at another input size, for timing only.

The serving cost of a larger input is known before any run is trained at it: the network is
MobileNetV2 at that size whatever its weights. This writes one (ImageNet base, untrained head,
the shipped card's fields with its own files and size) that ``python -m benchmarks --quick
--model DIR`` times beside the same made at the shipped size. Its answers mean nothing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_export(size: tuple[int, int], out: str | Path, card_from: str | Path = "model/shipped") -> Path:
    import numpy as np

    from model.card import read_json, write_json
    from training.export import export_model
    from training.network import build_network, calibrated

    out = Path(out)
    _, exported = export_model(calibrated(build_network(size), 1.0), out, np.zeros((2, *size, 3), np.float32))
    card = {**read_json(card_from), **exported,
            "input_size": {"height": size[0], "width": size[1]}, "version": f"timing-{size[0]}x{size[1]}"}
    write_json(out, card)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.input_size", description=__doc__)
    parser.add_argument("size", help="HxW, e.g. 192x256")
    parser.add_argument("out", help="export folder to write")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    print(write_export((height, width), args.out))


if __name__ == "__main__":
    main()
