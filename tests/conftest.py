"""Shared fixtures: the shipped model, shipped example images, a tiny HAM10000-layout folder."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from PIL import Image

from app.launch import free_port, running_demo

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# A suite started in the background of a script (`pytest ... &`) ignores SIGINT, and the demos it starts
# would inherit that and never see the Ctrl+C the shutdown tests send; here they see it as in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# The files that take minutes, longest first (per-file sums of a full run's durations on 2 cores). With a
# test file a worker (`-n 2 --dist loadfile`) the suite ends when its last file does: the long files start
# first and the short ones fill in behind them. xdist's own order (most tests first) started the longest,
# test_distributed (3 tests), near the end. test_external comes early because it trains the session's
# `run_with_extra`, which eight other files read.
LONGEST_FIRST = ("test_distributed.py", "test_external.py", "test_train.py", "test_readme.py",
                 "test_train_options.py", "test_browser.py", "test_soup.py", "test_distill.py")


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the others keep their order


_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    file = report.nodeid.split("::")[0]
    _FILE_SECONDS[file] = _FILE_SECONDS.get(file, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    """Seconds per test file, the figure LONGEST_FIRST is ordered by (with xdist: summed on the controller)."""
    if not _FILE_SECONDS:
        return
    files = sorted(_FILE_SECONDS.items(), key=lambda item: -item[1])
    terminalreporter.write_sep("=", "seconds per test file (setup + call + teardown), the 12 longest")
    for file, seconds in files[:12]:
        terminalreporter.write_line(f"{seconds:8.1f}  {file}")
    terminalreporter.write_line(f"{sum(_FILE_SECONDS.values()):8.1f}  all {len(files)} files")


@pytest.fixture(scope="session")
def clf():
    from model import load_classifier

    return load_classifier()


@pytest.fixture(scope="session")
def examples() -> list[dict]:
    with open(EXAMPLES / "examples.csv") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["path"] = EXAMPLES / row["file"]
    return rows


@pytest.fixture(scope="session")
def example_image(examples) -> np.ndarray:
    from model import load_image

    return load_image(examples[0]["path"])


def make_ham_folder(root: Path, per_class: int = 8, size=(150, 200), seed: int = 0) -> Path:
    """A tiny dataset in HAM10000 layout: coloured blobs (boxed in lesion_boxes.csv), some lesions with two images."""
    from model.labels import CLASSES

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    rows, boxes = [], []
    n = 0
    for k, dx in enumerate(CLASSES):
        for j in range(per_class):
            lesion = f"HAM_{k:02d}{j:04d}"
            for _ in range(1 + (j % 3 == 0)):  # every third lesion has two images
                image_id = f"ISIC_{n:07d}"
                n += 1
                h, w = size
                yy, xx = np.mgrid[:h, :w]
                radius = 20 + 5 * k + rng.integers(0, 10)
                cy, cx = h / 2 + rng.integers(-10, 10), w / 2
                blob = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
                boxes.append({"image_id": image_id,
                              "top": max(0, int(cy - radius)), "bottom": min(h, int(cy + radius) + 1),
                              "left": max(0, int(cx - radius)), "right": min(w, int(cx + radius) + 1)})
                img = np.full((h, w, 3), (225, 180, 160), np.uint8)
                img[blob] = np.array([40 + 30 * k, 120 - 10 * k, 60 + 20 * (k % 3)], np.uint8)
                img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / "images" / f"{image_id}.jpg", quality=92)
                rows.append({"lesion_id": lesion, "image_id": image_id, "dx": dx, "dx_type": "histo",
                             "age": 50.0, "sex": "male", "localization": "back"})
    with open(root / "HAM10000_metadata.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(root / "lesion_boxes.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(boxes[0]))
        writer.writeheader()
        writer.writerows(boxes)
    return root


@pytest.fixture(scope="session")
def ham_folder(tmp_path_factory) -> Path:
    return make_ham_folder(tmp_path_factory.mktemp("ham"))


_free_port = free_port  # the name the tests import


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The real app (`python demo.py`) on a free port; yields its URL. Its log: demo.log in the base temp."""
    with running_demo(tmp_path_factory.getbasetemp() / "demo.log") as demo:
        yield demo.url


@pytest.fixture(scope="session")
def client(app_server):
    from gradio_client import Client

    return Client(app_server, verbose=False)


ISIC2017_PARTS = {"train": 9, "validation": 6, "test": 6}  # per class (mel, nv, bkl)
# as imbalanced as the real set's rare classes: df and vasc below the rule's 5 images, the others at or above
ISIC2018_CLASSES = {"akiec": 5, "bcc": 5, "bkl": 5, "df": 1, "mel": 5, "nv": 6, "vasc": 3}
ISIC2018_TEST_A_CLASSES = {c: 4 for c in ISIC2018_CLASSES}
BCN_PER_CLASS = 2  # 84x84, two images a lesion  # even: each lesion's two images share a class


def _blob_image(path: Path, k: int, rng: np.random.Generator, size=(256, 256)) -> None:
    """A lesion-like blob whose colour depends on the class index, as in the HAM fixture."""
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    img = np.full((h, w, 3), (225, 180, 160), np.uint8)
    img[(yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (30 + 5 * k) ** 2] = (40 + 30 * k, 120 - 10 * k, 60 + 20 * (k % 3))
    Image.fromarray(np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)).save(path, quality=92)


def make_shared_data(root: Path) -> Path:
    """A tiny ../shared/data: ham10000/, isic2017/ (3 classes, the challenge's three parts), isic2018_val/,
    isic2018_test_a/ (with lesion ids), bcn20000_84/."""
    import pandas as pd

    from model.labels import CLASSES

    rng = np.random.default_rng(1)
    make_ham_folder(root / "ham10000")
    (root / "isic2017" / "images").mkdir(parents=True)
    rows, n = [], 0
    for part, per_class in ISIC2017_PARTS.items():
        for dx in ("mel", "nv", "bkl"):
            for _ in range(per_class):
                image_id = f"ISIC_{10000 + n:07d}"  # apart from the HAM fixture's ids, as in reality
                _blob_image(root / "isic2017" / "images" / f"{image_id}.jpg", CLASSES.index(dx), rng)
                rows.append({"image_id": image_id, "dx": dx, "isic2017_split": part})
                n += 1
    pd.DataFrame(rows).to_csv(root / "isic2017" / "labels.csv", index=False)
    (root / "isic2018_val" / "images").mkdir(parents=True)
    with open(root / "isic2018_val" / "ISIC2018_Task3_Validation_GroundTruth.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"])
        order = ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"]
        for j, dx in enumerate([c for c in CLASSES for _ in range(ISIC2018_CLASSES[c])]):
            image_id = f"ISIC_{34321 + j:07d}"
            _blob_image(root / "isic2018_val" / "images" / f"{image_id}.jpg", CLASSES.index(dx), rng, (450, 600))
            writer.writerow([image_id, *(float(c == dx) for c in order)])
    (root / "isic2018_test_a" / "images").mkdir(parents=True)
    with open(root / "isic2018_test_a" / "ISIC2018_Task3_Test_GroundTruth_A.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC", "lesion_id"])
        for j, dx in enumerate([c for c in CLASSES for _ in range(ISIC2018_TEST_A_CLASSES[c])]):
            image_id = f"ISIC_{34524 + j:07d}"
            _blob_image(root / "isic2018_test_a" / "images" / f"{image_id}.jpg", CLASSES.index(dx), rng, (450, 600))
            writer.writerow([image_id, *(float(c == dx) for c in order), f"IL_{j // 2:07d}"])  # two images a lesion
    (root / "bcn20000_84" / "images").mkdir(parents=True)
    rows = []
    for j, dx in enumerate([c for c in CLASSES for _ in range(BCN_PER_CLASS)]):
        image_id = f"ISIC_{53454 + j:07d}"
        _blob_image(root / "bcn20000_84" / "images" / f"{image_id}.jpg", CLASSES.index(dx), rng, (84, 84))
        rows.append({"image_id": image_id, "dx": dx, "lesion_id": f"BCN_{j // 2:07d}"})
    pd.DataFrame(rows).to_csv(root / "bcn20000_84" / "labels.csv", index=False)
    return root


def made_once(tmp_path_factory, name: str, make: Callable[[Path], object]) -> Path:
    """The folder ``make(folder)`` fills, made once a test session however many xdist workers ask.

    pytest-xdist's recipe for costly session fixtures: the first worker to ask makes it in the temp
    folder all workers share, under a file lock; the others wait for it and reuse it.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory) -> Path:
    """Read-only, so one copy serves every worker."""
    return made_once(tmp_path_factory, "shared", lambda folder: make_shared_data(folder / "data")) / "data"


def _train_with_extra(data: Path, out: Path) -> None:
    from training.train import Config, train

    train(Config(data=str(data / "ham10000"), out=str(out), extra=str(data / "isic2017"), size=(64, 80),
                 batch_size=8, head_epochs=1, finetune_epochs=1, finetune_from="block_15_expand", workers=2,
                 lesion_crop=0.5, resamples=200))


@pytest.fixture(scope="session")
def run_with_extra(shared_data, tmp_path_factory) -> Path:
    """A tiny run trained on HAM10000 plus the ISIC 2017 train part, with lesion-focused crops.

    Trained once a session; each worker gets its own copy, since some tests write into the run.
    """
    trained = made_once(tmp_path_factory, "runs", lambda folder: _train_with_extra(shared_data, folder / "extra"))
    trained = trained / "extra"  # the name the card keeps (``out``) is the name the selection reports
    return Path(shutil.copytree(trained, tmp_path_factory.mktemp("runs") / "extra"))


@pytest.fixture(scope="session")
def cam_export(run_with_extra, shared_data, tmp_path_factory) -> Path:
    """A copy of the tiny run's export, measured by `python -m training cams` (which writes its gradient
    model). Made once a session and read-only: a test that changes it works on a copy."""
    from training.__main__ import main as training_cli

    def measure(folder: Path) -> None:
        shutil.copytree(run_with_extra / "export", folder / "export")
        training_cli(["cams", str(folder / "export"), "--data", str(shared_data / "ham10000"), "--images", "3"])

    return made_once(tmp_path_factory, "cams", measure) / "export"


def tiny_finetune(data: Path, out: Path, **options) -> dict:
    """One head epoch and two kept fine-tuning epochs at a learning rate that moves the weights, logit-adjusted,
    on the generated HAM10000 with BCN20000's images added, drawn class- and source-balanced, and half of all
    training images degraded."""
    from training.train import Config, train

    return train(Config(data=str(data / "ham10000"), out=str(out), bcn=str(data / "bcn20000_84"), degrade=0.5,
                        size=(64, 80), batch_size=8, head_epochs=1, finetune_epochs=2, warmup_epochs=1,
                        finetune_lr=1e-2, finetune_from="block_15_expand", patience=None, workers=2,
                        keep_epochs=True, balance="logit_adjust", sampling="balanced", resamples=200, **options))


@pytest.fixture(scope="session")
def raw_run(shared_data, tmp_path_factory) -> tuple[Path, dict]:
    """(run folder, its card): ``tiny_finetune`` without EMA, phase 2's epochs averaged. The control of the EMA
    test, the subject of the averaging test and of the BCN20000 test: one run for the three, made once a
    session, read-only."""
    run = made_once(tmp_path_factory, "raw", lambda folder: tiny_finetune(shared_data, folder / "run",
                                                                          average_from=1)) / "run"
    return run, json.loads((run / "export" / "model_card.json").read_text())
