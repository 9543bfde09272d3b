"""Batch testing: many images (or a zip) in, a predictions table out; with labels, the metrics.

Labels come as a CSV in the HAM10000 metadata layout (at least ``image_id`` and ``dx``),
matched to images by file name without suffix.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np

from model import CLASSES, ImageError, load_image
from model.preprocessing import resize
from model.results import ERROR, EXTRA, HEADER, IMAGE_SUFFIXES, score_rows

from .errors import said_on_page, user_error, user_facing
from .scratch import new_file
from .views import classifier

MAX_IMAGES = 1000
MAX_UNZIPPED_BYTES = 300 * 1024 * 1024  # refuses zip bombs before extracting anything
SHOWN_DECIMALS = 3  # the on-screen table; the CSV keeps the CLI's 6
ZIP_MAGIC = b"PK\x03\x04"


class Unreadable(str):
    """An upload that is no image source at all (a damaged zip): its row carries this reason."""


def table_headers(labelled: bool) -> list[str]:
    """The batch table's and CSV's columns: the CLI's, then the truth when labels were given, then the error."""
    return [*HEADER, *EXTRA, *(["true_dx"] if labelled else []), ERROR]


def _looks_like_zip(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return path.lower().endswith(".zip") or fh.read(4) == ZIP_MAGIC
    except OSError:
        return False


def _path_of(payload) -> str:
    return payload.get("path") if isinstance(payload, dict) else str(payload)


def collect(files) -> list[tuple[str, object]]:
    """(name, path or bytes) for every image among the uploads and inside uploaded zips."""
    items: list[tuple[str, object]] = []
    zips = []
    for payload in files or []:
        path = _path_of(payload)
        if zipfile.is_zipfile(path):
            zips.append(Path(path).name)
            try:
                with zipfile.ZipFile(path) as archive:
                    members = [m for m in archive.infolist() if not m.is_dir()
                               and Path(m.filename).suffix.lower() in IMAGE_SUFFIXES
                               and not Path(m.filename).name.startswith(".") and "__MACOSX" not in m.filename]
                    if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
                        raise user_error(f"{Path(path).name}: the zip unpacks to more than "
                                         f"{MAX_UNZIPPED_BYTES // 2**20} MB", "Zip too large")
                    items += [(Path(m.filename).name, archive.read(m)) for m in members]
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                items.append((Path(path).name, Unreadable(f"damaged zip file ({exc})")))
        elif _looks_like_zip(path):  # a zip whose directory is missing: truncated or damaged
            items.append((Path(path).name, Unreadable("damaged or truncated zip file")))
        else:
            items.append((Path(path).name, path))
    if not items and zips:
        raise user_error(f"{', '.join(zips)}: the zip holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).",
                         "No images")
    if not items:
        raise user_error("Upload one or more images, or a zip of images.", "No images")
    if len(items) > MAX_IMAGES:
        raise user_error(f"{len(items)} images: at most {MAX_IMAGES} per batch.", "Too many images")
    return items


def read_labels(payload) -> dict[str, str]:
    """image_id -> dx from a HAM10000-style CSV."""
    path = _path_of(payload)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise user_error(f"The labels file could not be read as CSV ({exc}).", "Bad labels file") from exc
    if not rows or not {"image_id", "dx"} <= set(rows[0]):
        raise user_error("The labels CSV needs the columns image_id and dx (HAM10000 metadata layout).",
                         "Bad labels file")
    unknown = sorted({r["dx"] for r in rows} - set(CLASSES))
    if unknown:
        raise user_error(f"Unknown diagnoses in the labels: {', '.join(unknown)}; expected {', '.join(CLASSES)}.",
                         "Bad labels file")
    return {r["image_id"].strip(): r["dx"].strip() for r in rows}


def metrics_markdown(m: dict, unlabelled: int) -> str:
    """Accuracy, balanced accuracy and per-class recall from ``model.metrics.classification_metrics``."""
    lines = [f"**{m['n']} labelled images**: accuracy **{m['accuracy']:.1%}**, balanced accuracy "
             f"(mean recall) **{m['balanced_accuracy']:.1%}**."]
    if unlabelled:
        lines.append(f"{unlabelled} images had no label and are left out of the metrics.")
    lines.append("\n| class | recall | support |\n|---|---|---|")
    lines += [f"| {c} | {v['recall']:.1%} | {v['support']} |" if v["support"] else f"| {c} | n/a | 0 |"
              for c, v in m["per_class"].items()]
    return "\n".join(lines)


@user_facing
def run_batch(files, labels_file=None, progress=gr.Progress()):
    """Predictions table, metrics (with labels), confusion matrix plot, CSV file to download."""
    items = collect(files)
    labels = read_labels(labels_file) if labels_file else None
    clf = classifier()
    rows, good_probs, good_truth = [], [], []
    unlabelled = 0
    chunk = 32
    blank = [""] * (len(CLASSES) + 1 + len(EXTRA))
    for start in progress.tqdm(range(0, len(items), chunk), desc="classifying"):
        part = items[start : start + chunk]
        arrays, errors = {}, {}
        for i, (name, source) in enumerate(part):
            if isinstance(source, Unreadable):
                errors[i] = str(source)
                continue
            try:
                arrays[i] = resize(load_image(source), clf.input_size)
            except ImageError as exc:
                errors[i] = str(exc).removeprefix(f"{name}: ")
        if arrays:
            probs, scored = score_rows(clf, list(arrays.values()))
            results = dict(zip(arrays, zip(probs, scored, strict=True), strict=True))
        for i, (name, _) in enumerate(part):
            truth = [labels.get(Path(name).stem, "")] if labels is not None else []
            if i in errors:
                rows.append([name, *blank, *truth, errors[i]])
                continue
            p, row = results[i]
            rows.append([name, *row, *truth, ""])
            if truth and truth[0]:
                good_probs.append(p)
                good_truth.append(CLASSES.index(truth[0]))
            elif labels is not None:
                unlabelled += 1
    headers = table_headers(labels is not None)
    out = new_file("predictions", ".csv")
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(headers)
        writer.writerows(rows)
    failed = [(r[0], r[-1]) for r in rows if r[-1]]
    summary = f"{len(rows) - len(failed)} of {len(rows)} images classified."
    if failed:
        shown = failed[:10]
        summary += " Not read: " + "; ".join(f"**{name}** ({why})" for name, why in shown)
        summary += f"; and {len(failed) - len(shown)} more (see the error column)." if len(failed) > 10 else "."
    figure = None
    if labels is not None and good_truth:
        from model.metrics import classification_metrics, confusion_figure  # a start-up exception: app/__init__

        truth, probs = np.array(good_truth), np.stack(good_probs)
        metrics = classification_metrics(truth, probs)
        summary += "\n\n" + metrics_markdown(metrics, unlabelled)
        figure = confusion_figure(metrics["confusion_matrix"], f"Confusion matrix ({len(truth)} labelled images)",
                                  stacked=True)
    elif labels is not None:
        summary += "\n\nNo image matched a label (labels are matched by file name without suffix)."
    return {"headers": headers, "data": [_shown(r) for r in rows]}, summary, figure, str(out)


def run_batch_page(files, labels_file=None, progress=gr.Progress()):
    """The Batch tab's button: as /batch, but a failure empties the results and is said in the summary."""
    try:
        return run_batch(files, labels_file, progress)
    except gr.Error as exc:
        return {"headers": table_headers(bool(labels_file)), "data": []}, said_on_page(exc), None, None


def _shown(row: list) -> list:
    """A CSV row as the on-screen table shows it: probabilities rounded, so every column fits."""
    return [f"{float(v):.{SHOWN_DECIMALS}f}" if (1 <= j <= len(CLASSES) or j == len(HEADER)) and v != "" else v
            for j, v in enumerate(row)]
