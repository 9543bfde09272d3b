"""The running app as an attacker or a crowd would meet it: files, limits, network, concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, _free_port


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize(
    "path",
    [
        "gradio_api/file=../../../../etc/passwd",
        "gradio_api/file=/etc/passwd",
        "gradio_api/file=%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "gradio_api/file=..%2F..%2F..%2Fetc%2Fpasswd",
        "gradio_api/file=%2Fetc%2Fpasswd",
        f"gradio_api/file={ROOT}/demo.py",
        "gradio_api/file=demo.py",
        "gradio_api/file=model/shipped/model_card.json",
        f"gradio_api/file={ROOT}/model/shipped/skin_mobilenetv2.tflite",
        "gradio_api/file=../main/requirements.txt",
        "file=/etc/passwd",
        "monitoring",
        "gradio_api/monitoring",
    ],
)
def test_files_outside_the_cache_and_monitoring_are_refused(app_server, path):
    assert _status(app_server + path) in (403, 404, 405)


def test_upload_size_is_capped(app_server):
    import httpx

    big = os.urandom(21 * 1024 * 1024)
    response = httpx.post(app_server + "gradio_api/upload", files={"files": ("big.jpg", big)}, timeout=60)
    assert response.status_code == 413
    assert "maximum allowed size" in response.text


def test_config_keeps_analytics_and_errors_off(app_server):
    import json

    with urllib.request.urlopen(app_server + "config", timeout=10) as response:
        config = json.load(response)
    assert config["analytics_enabled"] is False
    assert config["show_error"] is False
    assert config["max_file_size"] == 20 * 1024 * 1024
    assert "flag" not in json.dumps(config["dependencies"]).lower()


def test_identical_outputs_get_distinct_files(client, examples):
    """Gradio caches outputs under a hash of their bytes and rewrites that file on every request
    (the cause of dropped downloads under load): two requests must never share an output file."""
    from gradio.processing_utils import save_img_array_to_cache
    from gradio_client import handle_file

    same = np.zeros((32, 32, 3), np.uint8)
    cache = str(ROOT / ".pytest_cache" / "gradio")
    assert save_img_array_to_cache(same, cache) == save_img_array_to_cache(same, cache)  # the hazard

    first = client.predict(handle_file(str(examples[0]["path"])), "top class", 100, 0.5, api_name="/explain")
    second = client.predict(handle_file(str(examples[0]["path"])), "top class", 100, 0.5, api_name="/explain")
    assert first[1] != second[1] and first[2] != second[2]
    assert first[0] == second[0] and first[4] == second[4]  # same answer


def test_concurrent_identical_requests_all_succeed(app_server, examples):
    """20 clients send the same image at the same moment, to both endpoints: none may fail."""
    from gradio_client import Client, handle_file

    clients = [Client(app_server, verbose=False) for _ in range(20)]
    barrier = threading.Barrier(len(clients))
    failures: list[str] = []
    answers: list[dict] = []

    def work(i: int, c: Client) -> None:
        barrier.wait()
        try:
            if i % 4 == 0:
                result = c.predict(handle_file(str(examples[0]["path"])), "top class", 100, 0.45,
                                   api_name="/explain")
                answers.append(result[0])
            else:
                answers.append(c.predict(handle_file(str(examples[0]["path"])), api_name="/classify"))
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert failures == []
    assert len(answers) == 20 and all(a == answers[0] for a in answers)


def test_uploads_are_not_written_to_the_log(app_server, client, examples, tmp_path_factory):
    from gradio_client import handle_file

    client.predict(handle_file(str(examples[3]["path"])), api_name="/classify")
    log = (tmp_path_factory.getbasetemp() / "demo.log").read_text()
    assert examples[3]["file"] not in log and "/gradio/" not in log


GUARD = textwrap.dedent('''
    import os, socket
    _log = os.environ["NET_GUARD_LOG"]
    _local = ("127.", "::1", "localhost", "0.0.0.0")

    def _record(what):
        with open(_log, "a") as fh:
            fh.write(what + "\\n")

    def _is_local(host):
        return isinstance(host, str) and host.startswith(_local)

    _connect = socket.socket.connect
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            _record(f"connect {address}")
            raise OSError("outbound connection blocked by the test's socket guard")
        return _connect(self, address)
    socket.socket.connect = connect

    _getaddrinfo = socket.getaddrinfo
    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_local(host if isinstance(host, str) else host.decode()):
            _record(f"resolve {host}")
            raise socket.gaierror("name resolution blocked by the test's socket guard")
        return _getaddrinfo(host, *args, **kwargs)
    socket.getaddrinfo = getaddrinfo
''')


def test_no_outbound_connection_at_start_up_or_while_serving(tmp_path, examples):
    from gradio_client import Client, handle_file

    (tmp_path / "sitecustomize.py").write_text(GUARD)
    attempts = tmp_path / "attempts.log"
    attempts.write_text("")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NET_GUARD_LOG": str(attempts),
           "GRADIO_SERVER_PORT": str(port)}
    probe = "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\nexcept OSError:\n    pass"
    subprocess.run([sys.executable, "-c", probe], env=env, check=True, timeout=30)
    assert "192.0.2.1" in attempts.read_text(), "the socket guard is not active"
    attempts.write_text("")
    proc = subprocess.Popen([sys.executable, "demo.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        client = None
        while client is None:
            assert proc.poll() is None, "demo.py exited"
            assert time.time() < deadline, "demo.py did not start"
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.5)
        assert len(client.predict(handle_file(str(examples[0]["path"])), api_name="/classify")["confidences"]) == 7
        client.predict(handle_file(str(examples[1]["path"])), "top class", 100, 0.5, api_name="/explain")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert attempts.read_text() == ""


@pytest.mark.parametrize("payload", [
    {"path": str(ROOT / "examples" / "ISIC_0033394.jpg"), "meta": {"_type": "gradio.FileData"}},
    {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},
    {"path": "../../../../etc/hostname", "meta": {"_type": "gradio.FileData"}},
    "/etc/passwd",
])
def test_api_refuses_server_paths_it_did_not_receive(app_server, payload):
    """A client may only name files it uploaded: a server path in the payload is not read."""
    import httpx

    start = httpx.post(app_server + "gradio_api/call/classify", json={"data": [payload]}, timeout=30)
    event = start.json()["event_id"]
    stream = httpx.get(app_server + f"gradio_api/call/classify/{event}", timeout=60).text
    assert "event: error" in stream and "confidences" not in stream


def test_similar_cases_come_with_explain_and_alone(client, examples):
    """/explain adds the six similar confirmed cases after its other outputs; /similar gives the same six."""
    from gradio_client import handle_file

    from model.labels import CLASSES, display_name

    image = handle_file(str(examples[0]["path"]))
    explained = client.predict(image, "top class", 100, 0.45, api_name="/explain")
    assert len(explained) == 6 and isinstance(explained[4], dict)  # the first five as before
    alone = client.predict(image, api_name="/similar")
    assert len(alone) == 6
    assert [c["caption"] for c in explained[5]] == [c["caption"] for c in alone]
    names = [display_name(c) for c in CLASSES]
    for case in alone:
        assert any(case["caption"].startswith(name) for name in names) and "similarity" in case["caption"]
        assert Path(case["image"]["path"] if isinstance(case["image"], dict) else case["image"]).is_file()
