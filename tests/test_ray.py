"""python -m model predict --engine ray: the local engine's CSV from Ray Data, started here or joined.

Ray starts slowly on two cores, so the suite runs it twice: once as the CLI starts it, once
joining the cluster this module starts in-process.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT

PROBS = slice(1, 8)
# This module's Ray instance on 127.0.0.1 only, as the CLI's own local one (model/ray_engine.py),
# and so the CLI that joins it: Ray's local-only mode, read when Ray is imported.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, examples):
    """Shipped examples, generated images of other sizes and formats (one nested), one unreadable file."""
    root = tmp_path_factory.mktemp("ray_images")
    (root / "nested").mkdir()
    for e in examples:
        shutil.copy(e["path"], root / e["file"])
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(300, 400), (480, 480), (90, 200)]):
        image = np.clip(rng.normal(150, 40, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / ("nested" if i == 1 else ".") / f"generated_{i}.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    return root


@pytest.fixture(scope="module")
def local_csv(image_folder, examples, clf) -> tuple[list[list[str]], str]:
    """The local engine's rows and stderr, in this process."""
    from contextlib import redirect_stderr

    from model.cli import find_images, predict_files

    out, err = io.StringIO(), io.StringIO()
    with redirect_stderr(err):
        written = predict_files(find_images([str(image_folder)]), out, clf, progress=False)
    assert written == len(examples) + 3  # shipped and generated; not the unreadable one (a row with its reason)
    return list(csv.reader(io.StringIO(out.getvalue()))), err.getvalue()


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray instance started by this process (2 CPUs, no dashboard); yields its address."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model", "predict", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def assert_same_csv(rows: list[list[str]], expected: list[list[str]]) -> None:
    assert rows[0] == expected[0]  # header: the contract's columns, the flags, then error
    assert rows[0][-1] == "error"
    assert [r[0] for r in rows] == [r[0] for r in expected]  # same files (unreadable ones too), same order
    for row, want in zip(rows[1:], expected[1:], strict=True):
        if want[-1]:  # unreadable: empty values and the same reason
            assert row == want
            continue
        np.testing.assert_allclose([float(v) for v in row[PROBS]], [float(v) for v in want[PROBS]], atol=1e-6)
        assert row[8:] == want[8:]  # prediction, P(malignant), the three flags and an empty error


def skipped_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("skipped ")]


@pytest.mark.slow
def test_ray_engine_started_by_the_cli_writes_the_local_csv(image_folder, local_csv, tmp_path):
    expected, local_err = local_csv
    out = tmp_path / "ray.csv"
    result = run_cli(str(image_folder), "--out", str(out), "--engine", "ray")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Ray started at" in result.stderr
    with open(out, newline="") as fh:
        assert_same_csv(list(csv.reader(fh)), expected)
    assert skipped_lines(result.stderr) == skipped_lines(local_err)  # the same report of the same file
    assert len(skipped_lines(local_err)) == 1 and "broken.jpg" in skipped_lines(local_err)[0]
    assert [r[0] for r in expected[1:] if r[-1]] == [str(image_folder / "broken.jpg")]  # its row, with the reason
    assert f"{len(expected) - 2} of {len(expected) - 1} images classified" in result.stderr


@pytest.mark.slow
def test_ray_engine_joins_a_running_cluster(ray_cluster, image_folder, local_csv, tmp_path):
    expected, _ = local_csv
    result = run_cli(str(image_folder), "--engine", "ray", "--address", ray_cluster)  # CSV on stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Ray joined at {ray_cluster}" in result.stderr
    assert_same_csv(list(csv.reader(io.StringIO(result.stdout))), expected)
    assert len(skipped_lines(result.stderr)) == 1


def test_an_empty_folder_writes_a_header_only_csv_without_starting_ray(tmp_path):
    from model.cli import ERROR, EXTRA, HEADER

    (tmp_path / "empty").mkdir()
    out = tmp_path / "ray.csv"
    result = run_cli(str(tmp_path / "empty"), "--out", str(out), "--engine", "ray")
    assert result.returncode == 1 and "no image files found" in result.stderr
    assert "Ray started" not in result.stderr
    assert out.read_text().splitlines() == [",".join(HEADER + EXTRA + [ERROR])]


def test_address_without_the_ray_engine_is_refused():
    result = run_cli(str(ROOT / "examples"), "--address", "127.0.0.1:6379")
    assert result.returncode == 2 and "--address needs --engine ray" in result.stderr


@pytest.mark.parametrize("code", [
    "from model.cli import main; assert main(['predict', EXAMPLES, '--out', OUT]) == 0",  # the plain CLI
    "import demo",  # the app, built (not launched)
])
def test_the_plain_cli_and_the_demo_never_import_ray(code, tmp_path):
    script = (f"import sys; EXAMPLES = {str(ROOT / 'examples')!r}; OUT = {str(tmp_path / 'p.csv')!r}\n{code}\n"
              "print('ray imported:', any(m == 'ray' or m.startswith('ray.') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ray imported: False" in result.stdout
