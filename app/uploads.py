"""Uploads are decoded by the project's own loader, so every bad file gets a readable message."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import numpy as np

from model import ImageError, load_image

from .errors import user_error


def upload_source(payload) -> str | bytes:
    """The file path or bytes inside a Gradio file payload (preprocessing is off)."""
    if payload is None:
        raise user_error("Please upload an image first.", "No image")
    if isinstance(payload, (str, Path)):
        return str(payload)
    if isinstance(payload, dict):
        if payload.get("path"):
            return payload["path"]
        url = payload.get("url") or ""
        if url.startswith("data:"):
            try:
                return base64.b64decode(url.split(",", 1)[1], validate=False)
            except (binascii.Error, IndexError) as exc:
                raise user_error("The image data could not be read.", "Unreadable image") from exc
    raise user_error("The upload contained no image.", "No image")


def read_upload(payload) -> np.ndarray:
    """RGB uint8 image of an upload, or a gr.Error that says what is wrong with it."""
    try:
        return load_image(upload_source(payload))
    except ImageError as exc:
        raise user_error(str(exc), "Unreadable image") from exc
