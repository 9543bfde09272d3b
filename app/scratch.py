"""Where the app keeps what it derives from uploads: one private folder per process, short-lived.

Gradio keeps copies of uploads and of every output (overlays, thumbnails, reports, CSVs) in its cache;
the reports and CSVs are first written here. ``isolate`` (called by demo.py before Gradio is imported)
puts both in one folder of this process's own, ``$TMPDIR/skin-demo-*`` (mode 0700, every file 0600),
removes files made here once older than KEEP_SECONDS (every PURGE_EVERY seconds; Gradio's
``delete_cache`` does the same for its cache) and removes the whole folder when the app stops, by
Ctrl+C or SIGTERM. A process killed outright (SIGKILL) leaves it for the system's temp cleaner.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path

KEEP_SECONDS = 600
PURGE_EVERY = 60
SCRATCH_DIR: Path | None = None  # where new_file writes; None: "files" in the private folder

_private: Path | None = None
_lock = threading.Lock()
# "pid:folder": Gradio's reload mode imports this module again in the same process, and the copy must
# find the folder Gradio's cache already lives in; a child process (another pid) makes its own
_OWNER = "SKIN_DEMO_PRIVATE_DIR"


def private_dir() -> Path:
    """This process's own folder (created once, mode 0700, removed at exit), inside $GRADIO_TEMP_DIR if set."""
    global _private
    with _lock:
        if _private is None:
            pid, _, made = os.environ.get(_OWNER, "").partition(":")
            if pid == str(os.getpid()) and Path(made).is_dir():
                _private = Path(made)
            else:
                _private = Path(tempfile.mkdtemp(prefix="skin-demo-", dir=os.environ.get("GRADIO_TEMP_DIR")))
                os.environ[_OWNER] = f"{os.getpid()}:{_private}"
                atexit.register(remove_private_dir)
        return _private


def scratch_dir() -> Path:
    folder = SCRATCH_DIR or private_dir() / "files"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def purge(older_than: float | None = None) -> int:
    """Delete the files made here that are older than ``older_than`` seconds (KEEP_SECONDS); returns how many."""
    older_than = KEEP_SECONDS if older_than is None else older_than
    folder = SCRATCH_DIR or (_private / "files" if _private else None)
    if folder is None or not folder.is_dir():  # nothing made yet: nothing to create either
        return 0
    now, removed = time.time(), 0
    for old in folder.iterdir():
        try:
            if now - old.stat().st_mtime > older_than:
                old.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def start_purging(every: float = PURGE_EVERY) -> threading.Event:
    """Purge every ``every`` seconds in a background thread, until the returned event is set."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            purge()

    threading.Thread(target=run, name="skin-demo-purge", daemon=True).start()
    return stop


def remove_private_dir() -> None:
    """The whole private folder, Gradio's copies included: the app is stopping."""
    if _private is not None:
        shutil.rmtree(_private, ignore_errors=True)


_isolated = False


def isolate(every: float = PURGE_EVERY) -> Path:
    """Make every file this process writes private, put Gradio's cache in the private folder, purge it on a
    timer and remove it at exit. Once per process (``gradio demo.py`` re-runs demo.py on each edit)."""
    global _isolated
    root = private_dir()
    if _isolated or os.environ.get("GRADIO_TEMP_DIR") == str(root / "gradio"):  # done, maybe by a reloaded copy
        return root
    _isolated = True
    os.umask(0o077)  # uploads, Gradio's copies, overlays, reports: 0600, whoever writes them
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio")
    start_purging(every)
    try:  # SIGTERM (docker stop, a supervisor) ends the app as Ctrl+C does, so that atexit runs
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    except ValueError:  # not the main thread: whoever runs us handles signals
        pass
    return root


def new_file(stem: str, suffix: str) -> Path:
    """A unique path (mode 0600) in the scratch folder; stale files are purged first as well as on the timer."""
    purge()
    path = scratch_dir() / f"{stem}-{uuid.uuid4().hex[:10]}{suffix}"
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    return path
