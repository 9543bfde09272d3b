"""Gradio's cached output images are written whole: the same path and bytes as Gradio's, never rewritten."""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
from gradio import processing_utils

from app import cache_writes


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)


@pytest.fixture
def whole(monkeypatch):
    monkeypatch.setattr(processing_utils, "save_pil_to_cache", processing_utils.save_pil_to_cache)
    cache_writes.whole_writes()


def test_same_path_and_bytes_as_gradio(tmp_path, image, whole):
    ours = processing_utils.save_img_array_to_cache(image, str(tmp_path / "ours"))
    theirs = cache_writes._gradio_save_pil(processing_utils.Image.fromarray(image), str(tmp_path / "theirs"))
    assert os.path.relpath(ours, tmp_path / "ours") == os.path.relpath(theirs, tmp_path / "theirs")
    assert open(ours, "rb").read() == open(theirs, "rb").read()
    assert [p.name for p in (tmp_path / "ours").rglob("*")] == [p.name for p in (tmp_path / "theirs").rglob("*")]


def test_a_cached_file_is_handed_out_again_not_rewritten(tmp_path, image, whole, monkeypatch):
    first = processing_utils.save_img_array_to_cache(image, str(tmp_path))
    inode, data = os.stat(first).st_ino, open(first, "rb").read()
    os.utime(first, (1, 1))

    def no_write(*args, **kwargs):
        raise AssertionError("an existing cached file was written again")

    def read_only(self, mode="r", *args, **kwargs):
        if set(mode) & set("wax+"):
            no_write()
        return opened(self, mode, *args, **kwargs)

    opened = pathlib.Path.open
    monkeypatch.setattr(pathlib.Path, "open", read_only)  # Gradio's own save rewrites through Path.write_bytes
    monkeypatch.setattr(cache_writes.tempfile, "mkstemp", no_write)
    assert processing_utils.save_img_array_to_cache(image, str(tmp_path)) == first
    assert os.stat(first).st_ino == inode and open(first, "rb").read() == data
    assert os.stat(first).st_mtime > 1  # touched: Gradio's delete_cache ages it from this hand-out


def test_a_failed_write_leaves_nothing(tmp_path, image, whole, monkeypatch):
    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(cache_writes.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        processing_utils.save_img_array_to_cache(image, str(tmp_path))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
