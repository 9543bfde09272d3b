"""`gradio demo.py` (reload mode, as the README suggests for development) stays up and reloads on edits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.launch import serves_app
from tests.conftest import ROOT, _free_port

pytestmark = pytest.mark.slow


def _wait(predicate, seconds: float, proc: subprocess.Popen, log) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, f"reload mode exited with {proc.returncode}:\n{log.read_text()}"
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out:\n{log.read_text()}")


def _start(tmp_path: Path, attempts: int = 3) -> tuple[subprocess.Popen, int, Path]:
    """Reload mode on a free port; on another port if its first one was taken before it could bind it."""
    for attempt in range(attempts):
        port = _free_port()
        env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
        log = tmp_path / f"reload-{attempt}.log"
        with open(log, "w") as out:
            # its own process group: reload mode serves from a child, which must not outlive the test
            proc = subprocess.Popen([sys.executable, "-m", "gradio", "demo.py"], cwd=ROOT, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None and not serves_app(port):
            time.sleep(0.5)
        if proc.poll() is None and serves_app(port):
            return proc, port, log
        _stop(proc)
        if not _listening(port):  # not a stolen port: the app itself failed or is too slow
            break
    raise AssertionError(f"reload mode did not serve:\n{log.read_text()}")


def _stop(proc: subprocess.Popen) -> None:
    """The whole process group: reload mode's child may outlive its parent."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    proc.wait(timeout=20)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_reload_mode_keeps_serving_and_reloads_an_edit(tmp_path, examples):
    from gradio_client import Client, handle_file

    proc, port, log = _start(tmp_path)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        image = handle_file(str(examples[0]["path"]))
        assert len(client.predict(image, api_name="/classify")["confidences"]) == 7
        time.sleep(8)  # it used to exit about 2 s after it started serving
        assert proc.poll() is None, log.read_text()

        edited = ROOT / "app" / "report.py"
        os.utime(edited)  # an edit, as far as the watcher can tell
        _wait(lambda: "Changes detected" in log.read_text(), 30, proc, log)
        time.sleep(3)
        assert "failed" not in log.read_text()
        assert len(client.predict(image, api_name="/classify")["confidences"]) == 7
        assert proc.poll() is None
    finally:
        _stop(proc)
    deadline = time.time() + 20
    while _listening(port) and time.time() < deadline:
        time.sleep(0.5)
    assert not _listening(port), "the reloading server's child still serves after the test"
