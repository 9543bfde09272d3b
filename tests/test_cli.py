"""python -m model predict: folders, the CSV contract, unreadable files and exit codes."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

HEADER = ["image", "akiec", "bcc", "bkl", "df", "mel", "nv", "vasc", "prediction"]
EXTRA = ["p_malignant", "suspicious", "uncertain", "not_dermoscopic"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model", "predict", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_folder_is_searched_recursively_and_bad_files_are_skipped(tmp_path, examples, clf):
    from model import load_image

    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    for i, e in enumerate(examples):
        shutil.copy(e["path"], (tmp_path if i % 2 else nested) / e["file"])
    (tmp_path / "broken.jpg").write_text("not an image")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "preds.csv"

    result = run_cli(str(tmp_path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "broken.jpg" in result.stderr and "not an image" in result.stderr
    with open(out) as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:9] == HEADER and rows[0][9:] == EXTRA + ["error"]
    assert len(rows) == 1 + len(examples) + 1  # the broken file too, with its reason
    by_name = {r[0].rsplit("/", 1)[-1]: r for r in rows[1:]}
    broken = by_name["broken.jpg"]
    assert broken[1:13] == [""] * 12 and "not an image" in broken[13]
    for e in examples:
        row = by_name[e["file"]]
        probs = np.array([float(v) for v in row[1:8]])
        assert abs(probs.sum() - 1) < 1e-4
        assert row[8] == HEADER[1 + int(probs.argmax())]
        assert float(row[9]) == pytest.approx(probs[0] + probs[1] + probs[4], abs=1e-5)
        assert row[10] in ("0", "1") and row[11] == str(int(probs.max() < 0.5)) and row[12] in ("0", "1")
        np.testing.assert_allclose(probs, clf.predict([load_image(e["path"])])[0], atol=1e-5)
        assert row[13] == ""


def test_exit_code_is_nonzero_only_when_nothing_was_read(tmp_path, examples):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    result = run_cli(str(bad), str(tmp_path / "missing.jpg"))
    assert result.returncode == 1
    assert "bad.png" in result.stderr and "missing.jpg" in result.stderr
    assert result.stdout.splitlines()[0] == ",".join(HEADER + EXTRA + ["error"])  # a CSV all the same
    assert len(result.stdout.splitlines()) == 3
    result = run_cli(str(bad), str(examples[0]["path"]))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == ",".join(HEADER + EXTRA + ["error"])
    assert len(lines) == 3 and lines[1].startswith(str(bad)) and lines[2].endswith(",")  # in the order given


def test_an_empty_folder_writes_a_header_only_csv_like_unreadable_files_do(tmp_path):
    out = tmp_path / "preds.csv"
    (tmp_path / "empty").mkdir()
    result = run_cli(str(tmp_path / "empty"), "--out", str(out))
    assert result.returncode == 1 and "no image files found" in result.stderr
    assert out.read_text().splitlines() == [",".join(HEADER + EXTRA + ["error"])]


def test_app_batch_csv_and_cli_csv_have_the_same_columns_and_error_rows(tmp_path, examples):
    """One behaviour for both doors: the same header and an unreadable file as a row with its reason."""
    from app.batch import run_batch

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    good = str(examples[0]["path"])

    class NoProgress:
        def tqdm(self, iterable, **_):
            return iterable

    table, _summary, _plot, csv_path = run_batch([str(bad), good], None, progress=NoProgress())
    cli = run_cli(str(bad), good).stdout.splitlines()
    with open(csv_path) as fh:
        app = fh.read().splitlines()
    assert app[0] == cli[0] == ",".join(table["headers"])
    assert app[1].split(",")[1:-1] == cli[1].split(",")[1:-1]  # blanks, the same reason
    assert app[2].split(",")[1:] == cli[2].split(",")[1:]
