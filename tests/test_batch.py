"""The Batch tab's logic (app/batch.py) on its own: what a person is told when a batch cannot run."""

from __future__ import annotations

import zipfile

import gradio as gr
import pytest


class NoProgress:
    def tqdm(self, iterable, **_):
        return iterable


def _zip(path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


@pytest.mark.parametrize("members", [{}, {"readme.txt": b"no pictures here", "photos/": b""}],
                         ids=["empty", "no-image"])
def test_a_zip_without_images_is_named_as_such(tmp_path, members):
    """Issue 31: an empty zip was answered "Upload one or more images, or a zip of images"."""
    from app.batch import collect

    with pytest.raises(gr.Error) as info:
        collect([_zip(tmp_path / "holiday.zip", members)])
    assert "holiday.zip: the zip holds no images (.bmp" in info.value.message
    with pytest.raises(gr.Error, match="Upload one or more images"):  # nothing uploaded at all
        collect([])


def test_the_page_empties_the_batch_results_and_says_why_in_the_summary(tmp_path, examples, monkeypatch):
    """The page's button does not fail (a failed event leaves bare "Error" badges once the toast fades)."""
    from app import scratch
    from app.batch import run_batch_page

    monkeypatch.setattr(scratch, "SCRATCH_DIR", tmp_path / "files")
    with pytest.warns(UserWarning, match="the zip holds no images"):  # the one toast
        table, summary, plot, csv_path = run_batch_page([_zip(tmp_path / "empty.zip", {})], None, NoProgress())
    assert table["data"] == [] and table["headers"][0] == "image"
    assert "**No images:** empty.zip: the zip holds no images" in summary and plot is None and csv_path is None
    table, summary, _, csv_path = run_batch_page([str(examples[0]["path"])], None, NoProgress())  # as /batch
    assert len(table["data"]) == 1 and "1 of 1 images classified" in summary and csv_path.endswith(".csv")
