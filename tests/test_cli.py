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
    assert rows[0][:9] == HEADER and rows[0][9:] == EXTRA
    assert len(rows) == 1 + len(examples)
    by_name = {r[0].rsplit("/", 1)[-1]: r for r in rows[1:]}
    for e in examples:
        row = by_name[e["file"]]
        probs = np.array([float(v) for v in row[1:8]])
        assert abs(probs.sum() - 1) < 1e-4
        assert row[8] == HEADER[1 + int(probs.argmax())]
        assert float(row[9]) == pytest.approx(probs[0] + probs[1] + probs[4], abs=1e-5)
        assert row[10] in ("0", "1") and row[11] == str(int(probs.max() < 0.5)) and row[12] in ("0", "1")
        np.testing.assert_allclose(probs, clf.predict([load_image(e["path"])])[0], atol=1e-5)


def test_exit_code_is_nonzero_only_when_nothing_was_read(tmp_path, examples):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    result = run_cli(str(bad), str(tmp_path / "missing.jpg"))
    assert result.returncode == 1
    assert "bad.png" in result.stderr and "missing.jpg" in result.stderr
    result = run_cli(str(bad), str(examples[0]["path"]))
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == ",".join(HEADER + EXTRA)
    assert len(result.stdout.splitlines()) == 2
