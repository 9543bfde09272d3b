"""Start the real app (``python demo.py``) on a free local port, for the tests and the benchmarks alike.

Both need the app as a user runs it, in its own process, and need to know when it listens and what it
logged if it did not; one helper, so the two never start it differently.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serves_app(port: int) -> bool:
    """This app (a Gradio page) answers HTTP on ``port``. A bare connect is not enough: between ``free_port``
    and the app's bind, another server (Ray's, TensorFlow's gRPC workers) can take the port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.status == 200 and b"gradio" in response.read().lower()
    except (OSError, ValueError, http.client.HTTPException):
        return False


class Demo(NamedTuple):
    url: str
    pid: int  # for what the caller measures of the process (memory)


@contextmanager
def running_demo(log_path: Path | None = None, timeout: float = 90, env: dict | None = None) -> Iterator[Demo]:
    """``python demo.py`` on a free port until the block ends; yields its URL and pid once it listens.

    ``log_path``: where its output goes (default: discarded). Raises RuntimeError with the log when it
    exits early or does not listen within ``timeout`` seconds.
    """
    port = free_port()
    env = {**os.environ, **(env or {}), "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "demo.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def output() -> str:
        return Path(log_path).read_text() if log_path else "(output discarded)"

    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError("demo.py exited early:\n" + output())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    message = f"demo.py did not start listening within {timeout:.0f} s:\n"
                    raise RuntimeError(message + output()) from None
                time.sleep(0.2)
        yield Demo(f"http://127.0.0.1:{port}/", proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log_path:
            log.close()
