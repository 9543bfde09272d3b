"""Gradio's cached copies of output images written whole, so that identical answers can be served at once.

Gradio (6.31) saves each output image under a folder named by the hash of its bytes, writing the file in
place. Two requests with the same answer (the same example image sent by two people) write the same path:
the second truncates the file while the first's client is downloading it, and that client gets a short
body ("Too little data for declared Content-Length"). Gradio's own ``save_file_to_cache`` already writes
under a temporary name and renames; ``whole_writes`` does the same for images: a path that exists holds
those very bytes (its folder is their hash) and is kept; a new one appears complete or not at all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gradio import processing_utils

_gradio_save_pil = processing_utils.save_pil_to_cache


def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """``processing_utils.save_pil_to_cache`` with the same path and bytes, written whole."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    if path.exists():
        os.utime(path)  # handed out again: Gradio's delete_cache ages files from their last touch
        return str(path)
    fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return str(path)


def whole_writes() -> None:
    """Route Gradio's image outputs (Image, Gallery, AnnotatedImage) through ``save_pil_to_cache`` above."""
    processing_utils.save_pil_to_cache = save_pil_to_cache
