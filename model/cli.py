"""python -m model predict PATH... [--out preds.csv] [--engine ray [--address ADDR]]: images into a CSV.

Images are decoded on worker threads while the previous batch runs through the model.
An unreadable file is reported on stderr and gets a row with its reason in the ``error``
column; the exit code is 1 only when no image at all could be read (the CSV is still written).
``--engine ray`` writes the same CSV with Ray Data, on this machine's cores or a cluster's
(model/ray_engine.py; needs requirements-scale.txt).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .results import ERROR, EXTRA, HEADER, IMAGE_SUFFIXES, decode, result_rows, score_rows
from .runtime import MAX_BATCH, ModelFileError, load_classifier

__all__ = ["ERROR", "EXTRA", "HEADER", "IMAGE_SUFFIXES", "find_images", "main", "predict_files", "result_rows"]

def find_images(paths: list[str]) -> list[Path]:
    """Files as given (any suffix), folders searched recursively for image suffixes."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    return found


def _batches(paths: list[Path], size, workers: int) -> Iterator[list[tuple[Path, np.ndarray | str]]]:
    """Chunks of (path, resized image or the reason it could not be read), in the order given."""
    with ThreadPoolExecutor(workers) as pool:
        chunk, good = [], 0
        for path, result in zip(paths, pool.map(lambda p: decode(p, size), paths), strict=True):
            chunk.append((path, result))
            good += not isinstance(result, str)
            if good == MAX_BATCH:
                yield chunk
                chunk, good = [], 0
        if chunk:
            yield chunk


def predict_files(paths: list[Path], out, clf, workers: int = 4, progress: bool = True) -> int:
    """Write one CSV row per file, in order; returns how many images were classified.

    A file that cannot be read gets a row with empty values and the reason in ``error`` (the
    app's batch CSV does the same), and a line on stderr.
    """
    writer = csv.writer(out)
    writer.writerow(HEADER + EXTRA + [ERROR])
    blank = [""] * (len(HEADER) - 1 + len(EXTRA))
    written = 0
    with tqdm(total=len(paths), unit="img", disable=not progress or len(paths) < 100, file=sys.stderr) as bar:
        for chunk in _batches(paths, clf.input_size, workers):
            good = [image for _, image in chunk if not isinstance(image, str)]
            rows = iter([])
            if good:
                rows = iter(score_rows(clf, good)[1])
            for path, image in chunk:
                if isinstance(image, str):
                    print(f"skipped {path}: {image}", file=sys.stderr)
                    writer.writerow([str(path), *blank, image])
                else:
                    writer.writerow([str(path), *next(rows), ""])
                    written += 1
            bar.update(len(chunk))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify image files and folders into a CSV")
    predict.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    predict.add_argument("--out", default="-", help="CSV file to write (default: standard output)")
    predict.add_argument("--model", default=None, help="LiteRT file or export folder (default: the shipped model)")
    predict.add_argument("--threads", type=int, default=None, help="inference threads")
    predict.add_argument("--workers", type=int, default=4, help="decoding threads")
    predict.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="local: threads in this process; ray: Ray Data actors, one classifier each")
    predict.add_argument("--address", default=None,
                         help="with --engine ray: the Ray cluster to join (default: start a local Ray)")
    args = parser.parse_args(argv)
    if args.address and args.engine != "ray":
        parser.error("--address needs --engine ray")

    paths = find_images(args.paths)
    try:
        clf = load_classifier(args.model, num_threads=args.threads)
    except ModelFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not paths:  # still a CSV (header only), as when no file could be read
        print("no image files found in " + " ".join(args.paths), file=sys.stderr)
    if args.engine == "ray":
        try:
            # The command line's one import inside a function: Ray is optional (requirements-scale.txt) and
            # takes seconds to load, so only --engine ray imports it (tests/test_ray.py).
            from .ray_engine import predict_files_ray
        except ImportError as exc:
            print(f"--engine ray needs Ray ({exc}): pip install -r requirements-scale.txt", file=sys.stderr)
            return 2

        def score(fh):
            return predict_files_ray(paths, fh, args.model, args.address, args.threads or 1)
    else:
        def score(fh):
            return predict_files(paths, fh, clf, args.workers)
    if args.out == "-":
        written = score(sys.stdout)
    else:
        with open(args.out, "w", newline="") as fh:
            written = score(fh)
    print(f"{written} of {len(paths)} images classified", file=sys.stderr)
    return 0 if written else 1
