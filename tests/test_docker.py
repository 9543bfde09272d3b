"""The Dockerfile, without Docker: what it installs and copies, and that the app honours what it sets.

No container engine runs in CI, so the file is read as Docker would read it (continued lines
joined) and the app is started the way the image starts it: ``python demo.py`` with the
image's GRADIO_SERVER_NAME and a free GRADIO_SERVER_PORT; its HEALTHCHECK command is then run.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time

import pytest

from app.launch import serves_app
from tests.conftest import ROOT, _free_port


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def env() -> dict[str, str]:
    values = {}
    for op, arg in instructions():
        if op == "ENV":
            values.update(item.split("=", 1) for item in shlex.split(arg))
    return values


def test_the_image_installs_requirements_txt_and_nothing_else():
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    installs = [arg for op, arg in steps if op == "RUN" and "pip" in arg]
    assert installs == ["pip install -r requirements.txt"]
    order = [f"{op} {arg}" for op, arg in steps]
    # requirements.txt is copied alone before the install, the code after it (a code change keeps the layer)
    assert order.index("COPY requirements.txt .") < order.index("RUN " + installs[0]) < order.index("COPY demo.py ./")
    copies = [arg for op, arg in steps if op == "COPY"]
    assert not any("requirements-" in c for c in copies)  # no training, dev or Ray requirements in the image
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    packages = {re.split(r"[=<>!\[ ;]", line)[0].lower() for line in lines if line}
    assert "gradio" in packages and "ai-edge-litert" in packages
    assert not packages & {"tensorflow", "tensorflow-cpu", "keras", "ray"}  # serving stays light


def test_the_image_copies_every_project_file_the_app_loads():
    """Import the app as the image runs it; each project file it loads must be inside a COPY."""
    copied = [arg.split()[0].rstrip("/") for op, arg in instructions() if op == "COPY"]
    script = ("import sys, demo; print('\\n'.join(m.__file__ for m in list(sys.modules.values()) "
              "if getattr(m, '__file__', None)))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = {os.path.relpath(f, ROOT) for f in result.stdout.split() if f.startswith(str(ROOT) + os.sep)}
    assert "model/runtime.py" in loaded and "demo.py" in loaded
    missing = [f for f in sorted(loaded) if not any(f == c or f.startswith(c + "/") for c in copied)]
    assert not missing, f"the app loads files the image does not copy: {missing}"


def test_the_image_runs_the_demo_as_a_non_root_user_with_a_healthcheck():
    steps = instructions()
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert [op for op, _ in steps].index("USER") < [op for op, _ in steps].index("CMD")
    assert [arg for op, arg in steps if op == "CMD"] == ['["python", "demo.py"]']
    assert env()["GRADIO_SERVER_NAME"] == "0.0.0.0" and env()["GRADIO_SERVER_PORT"] == "7860"
    assert ("EXPOSE", "7860") in steps and any(op == "HEALTHCHECK" for op, _ in steps)


@pytest.mark.slow
def test_demo_listens_where_the_image_says_and_passes_its_healthcheck(tmp_path, examples):
    image_env = env()
    port = _free_port()
    log = open(tmp_path / "demo.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "demo.py"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **image_env, "GRADIO_SERVER_PORT": str(port)})
    try:
        deadline = time.time() + 120
        while not serves_app(port):  # its own page: a bare connect could be another server on the port
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
            assert time.time() < deadline, "demo.py did not serve its page within 120 s"
            time.sleep(0.5)
        # 0.0.0.0 means every interface: another loopback address reaches it too (127.0.0.1 alone would not)
        socket.create_connection(("127.0.0.2", port), timeout=5).close()

        from gradio_client import Client, handle_file

        client = Client(f"http://127.0.0.2:{port}/", verbose=False)
        result = client.predict(handle_file(str(examples[0]["path"])), api_name="/classify")
        assert len(result["confidences"]) == 7

        healthcheck = next(arg for op, arg in instructions() if op == "HEALTHCHECK").split(" CMD ", 1)[1]
        check = subprocess.run(["sh", "-c", healthcheck], env={**os.environ, **image_env, "GRADIO_SERVER_PORT":
                                                                str(port)}, capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0, check.stderr
        stopped = subprocess.run(["sh", "-c", healthcheck], env={**os.environ, "GRADIO_SERVER_PORT":
                                                                  str(_free_port())}, capture_output=True, timeout=30)
        assert stopped.returncode != 0  # the check fails where nothing listens
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
