"""The app coming up as the tests and benchmarks start it, and as a developer does.

`python demo.py` through ``running_demo`` serves even when another server took its port first;
`gradio demo.py` (reload mode, as the README suggests for development) stays up and reloads on edits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from app.launch import listening, running_demo, serves_app
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


def test_reload_mode_keeps_serving_and_reloads_an_edit(tmp_path, examples):
    from gradio_client import Client, handle_file

    log = tmp_path / "reload.log"
    with running_demo(log, args=("-m", "gradio", "demo.py")) as demo:
        proc, port = demo.process, demo.port
        client = Client(demo.url, verbose=False)
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
    deadline = time.time() + 20
    while listening(port) and time.time() < deadline:
        time.sleep(0.5)
    assert not listening(port), "the reloading server's child still serves after the test"


STAND_IN = """
import http.server, os, sys
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"<html>gradio</html>")
try:
    server = http.server.HTTPServer(("127.0.0.1", int(os.environ["GRADIO_SERVER_PORT"])), Page)
except OSError as error:
    sys.exit(f"Cannot find empty port: {error}")  # what Gradio's launch does on a taken port
server.serve_forever()
"""


def test_the_demo_starts_on_another_port_when_a_stranger_took_its_first(tmp_path, monkeypatch):
    """A bare listening socket on the first port (as Ray's or gRPC's servers would be): the app's bind fails,
    and ``running_demo`` starts it again on a free port. A stand-in for demo.py that binds and exits as
    Gradio's launch does keeps this to a second; the real app starts the same way in the ``app_server``
    fixture."""
    import app.launch

    (tmp_path / "demo.py").write_text(STAND_IN)
    monkeypatch.setattr(app.launch, "ROOT", tmp_path)
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        taken = stranger.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(app.launch, "free_port", lambda: next(ports, None) or _free_port())
        with app.launch.running_demo(tmp_path / "demo.log") as demo:
            port = demo.port
            assert port != taken and serves_app(port)
        assert not listening(port)  # stopped with the block
        with pytest.raises(RuntimeError, match="port taken by another server 2 times"):
            ports = iter([taken, taken])
            with app.launch.running_demo(attempts=2):
                pass


def test_an_app_that_fails_by_itself_is_reported_with_its_log(tmp_path, monkeypatch):
    import app.launch

    (tmp_path / "demo.py").write_text("raise SystemExit('no model here')")
    monkeypatch.setattr(app.launch, "ROOT", tmp_path)
    with pytest.raises(RuntimeError, match="(?s)exited early.*no model here"):
        with app.launch.running_demo(tmp_path / "demo.log"):
            pass
