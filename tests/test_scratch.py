"""What the app keeps of an upload: private (0600) files in one folder of its own, purged on a timer and
removed when the app stops (issue 31: a report stayed in /tmp/gradio, mode 0644, after Ctrl+C)."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import time
from pathlib import Path

import pytest


def test_files_made_here_are_private_and_purged_once_stale(tmp_path, monkeypatch):
    from app import scratch

    monkeypatch.setattr(scratch, "SCRATCH_DIR", tmp_path / "files")
    old, new = scratch.new_file("report", ".png"), scratch.new_file("predictions", ".csv")
    assert stat.S_IMODE(old.stat().st_mode) == 0o600 and stat.S_IMODE(old.parent.stat().st_mode) == 0o700
    stale = time.time() - scratch.KEEP_SECONDS - 1
    os.utime(old, (stale, stale))
    assert scratch.purge() == 1 and not old.exists() and new.exists()


def test_the_timer_purges_without_waiting_for_the_next_file(tmp_path, monkeypatch):
    from app import scratch

    monkeypatch.setattr(scratch, "SCRATCH_DIR", tmp_path / "files")
    monkeypatch.setattr(scratch, "KEEP_SECONDS", 0.2)
    path = scratch.new_file("report", ".png")
    stop = scratch.start_purging(0.1)
    try:
        deadline = time.time() + 10
        while path.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert not path.exists()
    finally:
        stop.set()


def _tree(root: Path) -> list[Path]:
    return list(root.rglob("*"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_what_the_app_derives_from_an_upload_is_private_and_gone_when_it_stops(tmp_path, examples, stop):
    from gradio_client import Client, handle_file
    from PIL import Image

    from app.launch import running_demo
    from tests.conftest import ROOT

    upload = tmp_path / "my-lesion.png"  # not a shipped file: what is made of it is told apart from the page's
    Image.open(examples[0]["path"]).save(upload)
    shipped = {_digest(p) for p in [*ROOT.glob("examples/*.jpg"), *ROOT.glob("model/shipped/*.png")]}
    temp = tmp_path / "tmp"
    temp.mkdir()
    with running_demo(tmp_path / "demo.log", env={"TMPDIR": str(temp)}) as demo:
        client = Client(demo.url, verbose=False)
        image = handle_file(str(upload))
        lime = client.predict(image, "top class", 100, 0.45, api_name="/explain")[2]
        client.predict(image, "top class", 0.45, handle_file(lime), api_name="/report")
        (private,) = temp.glob("skin-demo-*")  # the app's one folder
        assert not (temp / "gradio").exists()  # Gradio's cache is inside it, not beside it
        made = _tree(private)
        derived = [p for p in made if p.is_file() and _digest(p) not in shipped]  # not the page's own pictures
        names = " ".join(p.name for p in derived)
        assert "my-lesion.png" in names and "report-" in names and len(derived) >= 6  # upload, maps, cases, report
        for path in [*derived, *(p for p in made if p.is_dir())]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o600 if path.is_file() else 0o700), (path, oct(mode))
        os.kill(demo.pid, stop)
        deadline = time.time() + 180  # a server shutting down on 2 busy cores took over a minute in CI
        while private.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert not private.exists(), _tree(private)
