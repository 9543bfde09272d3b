"""Every code block of the README runs as written, and its results table is the shipped card's.

Each block is run by the one runner whose pattern it matches; a block no runner claims fails the
test, so a new snippet cannot go untested. The only changes made to a block are the ones a reader
would make on another machine: the app's address, a scratch folder for what it writes, the tiny
data set instead of HAM10000 (and a training run sized to it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.launch import serves_app
from tests.conftest import ROOT, _free_port

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, flags=re.S | re.M)
URL = "http://127.0.0.1:7860/"
TINY_RUN = ("--size 64x80 --batch-size 8 --head-epochs 1 --finetune-epochs 1 --finetune-from block_15_expand "
            "--workers 2 --resamples 200")


def _bash(script: str, cwd: Path = ROOT, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})})
    assert result.returncode == 0, f"{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result


def _block(pattern: str) -> str:
    found = [code for _, code in BLOCKS if re.search(pattern, code)]
    assert len(found) == 1, f"{len(found)} README blocks match {pattern!r}"
    return found[0]


RUNNERS = {  # pattern that identifies a block -> the test that runs it
    r"pip install -r requirements.txt && python demo.py": "test_quick_start_serves_the_demo",
    r"pip install -e \.": "test_editable_install_block",
    r"from model import CLASSES, load_classifier": "test_python_api_block",
    r"from gradio_client import Client": "test_gradio_client_block",
    r"gradio_api/upload": "test_curl_block",
    r"python -m model predict examples/ --out": "test_cli_block",
    r"python -m training --data": "test_training_block",
    r"hf upload": "test_deploy_block",
}


def test_every_code_block_has_a_runner():
    assert len(BLOCKS) >= len(RUNNERS)
    for language, code in BLOCKS:
        claimed = [name for pattern, name in RUNNERS.items() if re.search(pattern, code)]
        assert len(claimed) == 1, f"README {language} block run by {claimed or 'no test'}:\n{code}"
        assert claimed[0] in globals()


def test_quick_start_serves_the_demo(tmp_path):
    """Run as written (pip finds everything installed: PIP_NO_INDEX keeps it from downloading), until it serves."""
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "PIP_NO_INDEX": "1"}
    log = tmp_path / "quick.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "-c", _block("python demo.py")], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and f"127.0.0.1:{port}" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
        assert f"http://127.0.0.1:{port}" in log.read_text()  # it prints the address it serves
        assert serves_app(port)  # its own page, not only an open port
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_ci_command_is_the_one_ci_runs():
    """`bash .ci/run` runs this suite, so the suite cannot run it; it checks what it would do."""
    assert "The tests as CI runs them: `bash .ci/run`" in " ".join(README.split())
    _bash("bash -n .ci/run")
    ci = (ROOT / ".ci/run").read_text()
    for step in ("pip install --quiet --disable-pip-version-check -r requirements-dev.txt", "ruff check .",
                 "pytest -q", "apt-get install -y -qq --no-install-recommends chromium"):
        assert step in ci


def test_editable_install_block(tmp_path):
    """In a venv that sees the installed requirements (a reader's `pip` would fetch them)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    script = _block(r"pip install -e \.").replace("pip install -e .",
                                                 "pip install -q --no-deps --no-build-isolation -e .")
    home = tmp_path / "home"
    home.mkdir()
    result = _bash(script, env={"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "HOME": str(home)})
    card = json.loads((ROOT / "model/shipped/model_card.json").read_text())
    assert result.stdout.strip().splitlines()[-1] == card["version"]


def test_python_api_block():
    code = _block(r"from model import CLASSES, load_classifier")
    check = ("\nimport numpy as np\nassert probs.shape == (1, 7) and cam.shape == weights.shape == image.shape[:2]\n"
             "assert all(p.shape == image.shape and p.dtype == np.uint8 for p in pictures)\n")
    # from standard input, as pasted into `python` at the repository's root
    result = subprocess.run([sys.executable, "-"], input=code + check, cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "mel" in result.stdout and "Suspicious" in result.stdout  # the example is a melanoma, flagged
    assert "np.float32" not in result.stdout  # numpy 2 prints scalars' types: the snippet prints plain numbers
    assert re.search(r"'mel': 0\.\d{1,3}\b", result.stdout) and not re.search(r"0\.\d{7,}", result.stdout)


def test_gradio_client_block(app_server):
    code = _block(r"from gradio_client import Client").replace(URL, app_server)
    result = subprocess.run([sys.executable, "-"], input=code, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Melanoma (mel)" in result.stdout and "True" in result.stdout


def test_curl_block(app_server):
    result = _bash(_block("gradio_api/upload").replace(URL, app_server), timeout=120)
    assert "event: complete" in result.stdout and "Melanoma (mel)" in result.stdout


def test_cli_block(tmp_path):
    out = tmp_path / "preds.csv"
    block = _block(r"python -m model predict examples/ --out")
    for written in re.findall(r"--out (\S+)", block) + re.findall(r"--out (\S+\.csv)", _block("python -m training")):
        _bash(f"git check-ignore -q {written}")  # what the README's commands write is not committed by mistake
    _bash(block.replace("preds.csv", str(out)))
    header = out.read_text().splitlines()[0]
    assert f"`{header}`" in README  # the header the README states is the one written
    assert len(out.read_text().splitlines()) == 1 + len(list((ROOT / "examples").glob("*.jpg")))


@pytest.mark.slow
def test_training_block(shared_data, tmp_path):
    """Trains a tiny run on the generated data sets; ships it into a scratch copy, not model/shipped/."""
    script = _block(r"python -m training --data")
    script = script.replace("../shared/data/ham10000_400x300", str(shared_data / "ham10000"))
    script = script.replace("../shared/data/ham10000", str(shared_data / "ham10000"))
    script = script.replace("../shared/data/isic2017", str(shared_data / "isic2017"))
    script = script.replace("runs/mine", str(tmp_path / "mine"))
    script = script.replace("mine.csv", str(tmp_path / "mine.csv")).replace("model/shipped/ ", f"{tmp_path}/ship/ ")
    first, rest = script.split("\n", 1)
    command, comment = first.split("#", 1)
    script = f"mkdir -p {tmp_path}/ship\n{command} {TINY_RUN}  #{comment}\n{rest}"
    _bash(script, timeout=1500)
    assert (tmp_path / "ship" / "skin_mobilenetv2.tflite").is_file()
    assert len((tmp_path / "mine.csv").read_text().splitlines()) > 1


def _table(heading: str, first_column: str) -> list[list[str]]:
    """The body rows of the table under `## heading` whose header starts with `first_column`."""
    section = README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    tables = re.findall(r"(?:^\|.*\n?)+", section, flags=re.M)
    found = [table for table in tables if table.strip("|").split("|")[0].strip() == first_column]
    assert len(found) == 1, f"{len(found)} tables under {heading!r} start with {first_column!r}"
    rows = [line.strip("|").split("|") for line in found[0].splitlines()]
    return [[cell.strip() for cell in row] for row in rows[2:]]


def test_results_table_quotes_the_shipped_card():
    """Shipping a new model means updating this table too: the test reads both."""
    card = json.loads((ROOT / "model/shipped/model_card.json").read_text())
    test, val = card["metrics"]["test"], card["metrics"]["val"]
    point = card["malignant_operating_point"]
    flag = f"malignant flag (P >= {point['threshold']:.3f})"
    expected = {
        "balanced accuracy (mean per-class recall)": (test["balanced_accuracy"], test["ci95"]["balanced_accuracy"],
                                                      val["balanced_accuracy"]),
        "accuracy": (test["accuracy"], test["ci95"]["accuracy"], val["accuracy"]),
        "macro one-vs-rest ROC AUC": (test["macro_auc"], test["ci95"]["macro_auc"], val["macro_auc"]),
        "melanoma recall": (test["per_class"]["mel"]["recall"], test["ci95"]["melanoma_recall"],
                            val["per_class"]["mel"]["recall"]),
        f"{flag}: sensitivity": (point["test_sensitivity"], test["ci95"]["malignant_sensitivity"],
                                 point["val_sensitivity"]),
        f"{flag}: specificity": (point["test_specificity"], test["ci95"]["malignant_specificity"],
                                 point["val_specificity"]),
    }
    rows = {row[0]: row[1:] for row in _table("Results", "metric")}
    assert set(rows) == set(expected)
    for name, (value, (low, high), validation) in expected.items():
        assert rows[name] == [f"{value:.3f}", f"{low:.3f}-{high:.3f}", f"{validation:.3f}"], name
    n_images, n_lesions = card["data"]["images"]["test"], card["data"]["lesions"]["test"]
    assert f"({n_images:,} images of {n_lesions:,} lesions" in " ".join(README.split())
    assert f"(model {card['version']})" in README


def test_readme_stays_short_and_links_resolve():
    assert len(README.splitlines()) <= 205
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
    anchors = {re.sub(r"[^\w\- ]", "", heading).strip().lower().replace(" ", "-")
               for heading in re.findall(r"^#+ (.+)$", README, flags=re.M)}
    for anchor in re.findall(r"\]\(#([^)]+)\)", README):
        assert anchor in anchors, anchor


def test_other_sources_table_quotes_the_shipped_card():
    """The external validation sets' figures in the README are the shipped card's."""
    card = json.loads((ROOT / "model/shipped/model_card.json").read_text())
    sets = card["external_validation"]["sets"]
    rows = {row[0]: row[1:] for row in _table("Results", "set")}
    assert set(rows) == {s["title"] for s in sets.values()}
    for s in sets.values():
        low, high = s["ci95"]["balanced_accuracy"]
        assert rows[s["title"]] == [f"{s['images']:,}", f"{s['balanced_accuracy']:.3f} ({low:.3f}-{high:.3f})",
                                    f"{s['macro_auc']:.3f}", f"{s['melanoma_auc']:.3f}",
                                    f"{s['melanoma_recall']:.3f}"], s["title"]


def test_deploy_block(tmp_path, monkeypatch):
    """The README's deploy path, as far as it runs offline: the clone runs as written, and the `hf upload` line
    goes through the Hub client's own command line and folder filter, with the Hub's side replaced by a recorder.

    The Hub refuses plain-git pushes of binaries (the history holds them outside LFS); its client decides per
    file with the Hub, so what is checked here is what it is given: every committed file, nothing else, as a
    Gradio Space whose front matter the Space can run.
    """
    import shlex

    from click.testing import CliRunner
    from huggingface_hub import HfApi
    from huggingface_hub.cli import upload as cli_upload
    from huggingface_hub.cli.hf import app
    from huggingface_hub.hf_api import DEFAULT_IGNORE_PATTERNS

    script = _block(r"hf upload").strip().replace("/tmp/space", str(tmp_path / "space"))
    clone, upload = script.rsplit(" && ", 1)
    _bash(clone)
    args = shlex.split(upload)
    assert args[:2] == ["hf", "upload"]

    calls: dict = {}

    class Recorder(HfApi):  # the real folder filter, no network
        def create_repo(self, **kwargs):
            calls["create_repo"] = kwargs
            return type("Repo", (), {"repo_id": kwargs["repo_id"]})()

        def _validate_yaml(self, content, **kwargs):
            calls["readme"] = content

        def upload_folder(self, **kwargs):
            calls["upload_folder"] = kwargs
            patterns = list(kwargs["ignore_patterns"] or [])
            operations = self._prepare_upload_folder_additions(
                kwargs["folder_path"], kwargs["path_in_repo"], allow_patterns=kwargs["allow_patterns"],
                ignore_patterns=patterns + DEFAULT_IGNORE_PATTERNS, repo_type=kwargs["repo_type"])
            calls["files"] = {op.path_in_repo for op in operations}
            return "https://huggingface.co/spaces/USER/NAME"

    monkeypatch.setattr(cli_upload, "get_hf_api", lambda token=None: Recorder())
    result = CliRunner().invoke(app, args[1:])
    assert result.exit_code == 0, result.output
    assert calls["create_repo"]["repo_type"] == "space" and calls["create_repo"]["space_sdk"] == "gradio"
    assert calls["upload_folder"]["repo_id"] == "USER/NAME" and calls["upload_folder"]["path_in_repo"] == "."
    committed = set(_bash("git ls-tree -r --name-only HEAD").stdout.split())
    assert calls["files"] == committed  # what the Space gets: the committed tree, no runs/, caches or outputs
    needed = {"README.md", "requirements.txt", "demo.py", "model/shipped/skin_mobilenetv2.tflite",
              "model/shipped/skin_mobilenetv2_cam.tflite", "model/shipped/gallery.npz",
              "model/shipped/model_card.json", "examples/examples.csv"}
    assert needed <= calls["files"]
    front = calls["readme"].split("---\n")[1]
    meta = dict(line.split(": ", 1) for line in front.strip().splitlines())
    assert meta["sdk"] == "gradio" and meta["app_file"] in calls["files"]
    pinned = re.search(r"^gradio==([\d.]+)", (ROOT / "requirements.txt").read_text(), flags=re.M).group(1)
    assert meta["sdk_version"] == pinned  # the Space runs the Gradio the tests ran
