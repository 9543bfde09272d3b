"""Files the app hands to Gradio for download (batch CSVs, reports): private, short-lived.

Gradio copies a returned file into its own cache (cleaned by ``delete_cache``); the original
here is removed once older than KEEP_SECONDS, at the next request that makes one.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

SCRATCH_DIR = Path(tempfile.gettempdir()) / "skin-demo"
KEEP_SECONDS = 600


def new_file(stem: str, suffix: str) -> Path:
    """A unique path (mode 0600 once written) in the scratch folder; purges stale files first."""
    SCRATCH_DIR.mkdir(mode=0o700, exist_ok=True)
    now = time.time()
    for old in SCRATCH_DIR.iterdir():
        try:
            if now - old.stat().st_mtime > KEEP_SECONDS:
                old.unlink()
        except OSError:
            pass
    path = SCRATCH_DIR / f"{stem}-{uuid.uuid4().hex[:10]}{suffix}"
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    return path
