"""`pip install -e .` makes the Python API work from any folder, with the shipped model."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.conftest import ROOT

# Run from another folder: the project's root must not be on sys.path by accident.
USE = """
import sys
from pathlib import Path
import model, explain, training
from model import load_classifier, load_image
root = Path(sys.argv[1])
assert Path(model.__file__).resolve().parent == root / "model", model.__file__
probs = load_classifier().predict([load_image(root / "examples" / "ISIC_0033394.jpg")])
assert probs.shape == (1, 7) and abs(probs.sum() - 1) < 1e-5
print("ok", explain.__name__, training.__name__)
"""


def test_editable_install_imports_from_anywhere(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = subprocess.run([python, "-c", "import model"], cwd=elsewhere, capture_output=True, text=True)
    assert before.returncode != 0 and "No module named 'model'" in before.stderr  # what a newcomer met
    # --no-deps: the venv sees the installed requirements; --no-build-isolation: no download
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(ROOT)],
                   check=True, timeout=300, capture_output=True)
    result = subprocess.run([python, "-c", USE, str(ROOT)], cwd=elsewhere, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ok explain training" in result.stdout


def test_the_wheel_carries_the_packages_and_the_shipped_model(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, timeout=300, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("model", "explain", "training", "app"):
        assert f"{package}/__init__.py" in names
    for shipped in ("skin_mobilenetv2.tflite", "model_card.json"):
        assert f"model/shipped/{shipped}" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
