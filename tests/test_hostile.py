"""Hostile and odd input through the Python API, the CLI and both app endpoints.

Every case gets an answer or a message a person can read, and the next ordinary request is
answered normally.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from model import ImageError, load_image
from tests.conftest import ROOT
from tests.hostile import FILES, NORMAL, lesion, write_all


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("name", list(FILES))
def test_python_api(name, hostile_files, clf, example_image):
    path, expected = hostile_files[name]
    if expected is NORMAL:
        probs = clf.predict([load_image(path)])
        assert probs.shape == (1, 7) and np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-5
    else:
        with pytest.raises(ImageError, match=expected) as info:
            load_image(path)
        assert name in str(info.value)  # the message names the file
    assert clf.predict([example_image]).shape == (1, 7)  # and the next request is fine


def test_an_image_over_the_limit_is_refused_without_a_warning(hostile_files):
    """Between 80 and 160 megapixels Pillow only warns (DecompressionBombWarning, printed by the CLI and the
    server); the loader refuses it with its own message and nothing else."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match="bomb_90mp.png: image too large"):
            load_image(hostile_files["bomb_90mp.png"][0])


def test_an_image_over_the_limit_is_refused_where_warnings_are_ignored(hostile_files):
    """The refusal does not rest on the process-wide warning filter alone (a host may reset the filters)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageError, match="bomb_90mp.png: image too large"):
            load_image(hostile_files["bomb_90mp.png"][0])


def test_exif_rotation_gives_the_rotated_pixels(hostile_files):
    out = load_image(hostile_files["exif_rotated.jpg"][0])
    expected = np.rot90(lesion(), k=-1)  # orientation 6: rotate 90 degrees clockwise to display
    assert out.shape == expected.shape
    assert np.abs(out.astype(int) - expected).mean() < 4


def test_first_frame_of_animations_and_pages(hostile_files):
    gif = load_image(hostile_files["animated.gif"][0])
    assert gif[32, 32, 0] > 150 and gif[32, 32, 1] < 80  # the red first frame, not the green second
    tiff = load_image(hostile_files["pages.tiff"][0])
    np.testing.assert_array_equal(tiff, lesion())


def test_huge_jpeg_is_decoded_reduced(hostile_files):
    out = load_image(hostile_files["huge.jpg"][0])
    assert 1024 <= max(out.shape[:2]) < 2048 and out.shape[1] > out.shape[0]


@pytest.mark.parametrize(
    "images, message",
    [
        ([np.full((150, 200, 3), np.nan, np.float32)], "uint8"),
        ([np.full((150, 200, 3), np.inf)], "uint8"),
        ([lesion().astype(np.int64)], "uint8"),
        ([lesion()[..., 0]], "HxWx3"),
        ([np.dstack([lesion(), lesion()[..., :1]])], "HxWx3"),
        ([np.zeros(100, np.uint8)], "HxWx3"),
        ([], "no images"),
        (lesion(), "sequence"),
        ([None], "numpy array"),
        (["examples/x.jpg"], "numpy array"),
    ],
    ids=["nan", "inf", "int64", "2d", "4-channel", "1d", "empty-list", "bare-array", "none", "path-string"],
)
def test_python_api_rejects_bad_arrays(images, message, clf, example_image):
    with pytest.raises(ImageError, match=message):
        clf.predict(images)
    assert clf.predict([example_image]).shape == (1, 7)


def test_cli_answers_the_good_and_names_the_bad(hostile_files, tmp_path):
    out = tmp_path / "preds.csv"
    folder = next(iter(hostile_files.values()))[0].parent
    result = subprocess.run([sys.executable, "-m", "model", "predict", str(folder), "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "DecompressionBombWarning" not in result.stderr, result.stderr
    with open(out) as fh:
        rows = {row["image"].rsplit("/", 1)[-1]: row for row in csv.DictReader(fh)}
    answered = {name for name, row in rows.items() if not row["error"]}
    readable_suffix = (".jpg", ".png", ".gif", ".tiff")  # .heic and .svg are not searched in folders
    for name, (_, expected) in hostile_files.items():
        if expected is NORMAL:
            assert name in answered
        elif name.endswith(readable_suffix):
            assert name not in answered
            line = next(line for line in result.stderr.splitlines() if name in line)
            assert expected in line and expected in rows[name]["error"]  # the CSV says why, as stderr does
    explicit = subprocess.run([sys.executable, "-m", "model", "predict", str(hostile_files["photo.heic"][0]),
                               str(hostile_files["drawing.svg"][0])], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    assert explicit.returncode == 1
    assert "HEIC/AVIF is an unsupported" in explicit.stderr and "SVG is an unsupported" in explicit.stderr


@pytest.mark.parametrize("endpoint", ["/classify", "/explain"])
def test_app_endpoints(endpoint, hostile_files, client, examples):
    from gradio_client import handle_file

    args = (100, 0.5) if endpoint == "/explain" else ()
    extra = ("top class",) if endpoint == "/explain" else ()
    for name, (path, expected) in hostile_files.items():
        if expected is NORMAL:
            result = client.predict(handle_file(str(path)), *extra, *args, api_name=endpoint)
            label = result[0] if endpoint == "/explain" else result
            assert len(label["confidences"]) == 7, name
        else:
            with pytest.raises(Exception) as info:
                client.predict(handle_file(str(path)), *extra, *args, api_name=endpoint)
            message = str(info.value)
            assert expected in message and name in message, (name, message)
            assert "Traceback" not in message and "raised an exception" not in message
        good = client.predict(handle_file(str(examples[0]["path"])), api_name="/classify")
        assert len(good["confidences"]) == 7
