"""Start the real app (``python demo.py``) on a free local port, for the tests and the benchmarks alike.

Both need the app as a user runs it, in its own process, and need to know when it listens and what it
logged if it did not; one helper, so the two never start it differently.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
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


def listening(port: int) -> bool:
    """Something accepts TCP connections on ``port`` (not necessarily this app)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


APP = ("demo.py",)  # what ``python`` is given; reload mode is ``("-m", "gradio", "demo.py")``


class Demo(NamedTuple):
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        """For what the caller measures of the process (memory) or signals to it."""
        return self.process.pid


def _start(log_path: Path | None, timeout: float, env: dict | None,
           args: tuple[str, ...]) -> tuple[subprocess.Popen, int] | None:
    """The app on a free port once it serves its page; None if another server took the port first.

    Raises RuntimeError with the log when the app itself exits early or does not serve within ``timeout``.
    """
    port = free_port()
    env = {**os.environ, **(env or {}), "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    with open(log_path, "w") if log_path else contextlib.nullcontext(subprocess.DEVNULL) as log:
        # its own process group: reload mode serves from a child, which must not outlive the block
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.time() + timeout
    while not serves_app(port):
        exited = proc.poll() is not None
        if exited or time.time() > deadline:
            _stop(proc)
            if listening(port):  # a stranger answers on the port the app could not bind
                return None
            output = Path(log_path).read_text() if log_path else "(output discarded)"
            why = "exited early" if exited else f"did not serve its page within {timeout:.0f} s"
            raise RuntimeError(f"{' '.join(args)} {why}:\n{output}")
        time.sleep(0.2)
    return proc, port


def _stop(proc: subprocess.Popen) -> None:
    """The whole process group, even when its leader has already exited (a child may outlive it)."""
    for stop, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, stop)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def running_demo(log_path: Path | None = None, timeout: float = 180, env: dict | None = None,
                 attempts: int = 3, args: tuple[str, ...] = APP) -> Iterator[Demo]:
    """``python demo.py`` (or ``python *args``) on a free port until the block ends; yields its URL, pid and
    process once it serves its page.

    A bare connect is not taken for the app: another process can take the port between ``free_port`` and the
    app's bind, and then the app starts again on another port (up to ``attempts`` times).
    ``log_path``: where its output goes (default: discarded). Raises RuntimeError with the log when it
    exits early or does not serve within ``timeout`` seconds.
    """
    for _ in range(attempts):
        started = _start(log_path, timeout, env, args)
        if started:
            break
    else:
        raise RuntimeError(f"{' '.join(args)} found its port taken by another server {attempts} times")
    proc, port = started
    try:
        yield Demo(port, proc)
    finally:
        _stop(proc)
