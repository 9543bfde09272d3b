"""Uploads are decoded by the project's own loader, so every bad file gets a readable message."""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

import gradio as gr
import numpy as np

from model import ImageError, load_image


def _source(payload) -> str | bytes:
    """The file path or bytes inside a Gradio file payload (preprocessing is off)."""
    if payload is None:
        raise gr.Error("Please upload an image first.", title="No image")
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
                raise gr.Error("The image data could not be read.", title="Unreadable image") from exc
    raise gr.Error("The upload contained no image.", title="No image")


def read_upload(payload) -> np.ndarray:
    """RGB uint8 image of an upload, or a gr.Error that says what is wrong with it."""
    try:
        return load_image(_source(payload))
    except ImageError as exc:
        raise gr.Error(str(exc), title="Unreadable image") from exc


def upload_digest(payload) -> str | None:
    """SHA-256 of the uploaded bytes (to recognise the shipped examples), None if unreadable."""
    try:
        source = _source(payload)
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except (gr.Error, OSError):
        return None
    return hashlib.sha256(data).hexdigest()
