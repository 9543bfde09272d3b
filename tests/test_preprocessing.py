"""The one image path: decoding, orientation, resizing and scaling."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.labels import CLASSES, class_index
from model.preprocessing import INPUT_SIZE, ImageError, load_image, prepare_batch, resize, scale


def _gradient(h=60, w=80) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.stack([xx * 3 % 256, yy * 4 % 256, (xx + yy) % 256], -1).astype(np.uint8)


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_classes_are_the_public_contract():
    assert CLASSES == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def test_class_index_accepts_codes_indices_and_top():
    probs = np.array([0.1, 0.0, 0.0, 0.0, 0.7, 0.2, 0.0])
    assert class_index("mel") == 4
    assert class_index(2) == 2
    assert class_index(None, probs) == 4
    with pytest.raises(ValueError, match="unknown class"):
        class_index("melanoma")
    with pytest.raises(ValueError, match="out of range"):
        class_index(7)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF"])
def test_lossless_formats_decode_to_the_same_pixels(fmt):
    pixels = _gradient()
    kw = {"lossless": True} if fmt == "WEBP" else {}
    out = load_image(_encode(Image.fromarray(pixels), fmt, **kw))
    assert out.dtype == np.uint8 and out.shape == pixels.shape
    np.testing.assert_array_equal(out, pixels)


def test_jpeg_decodes_close_to_source(tmp_path):
    pixels = _gradient()
    path = tmp_path / "x.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    out = load_image(path)
    assert out.shape == pixels.shape
    assert np.abs(out.astype(int) - pixels).mean() < 6


def test_exif_orientation_is_applied():
    pixels = _gradient(60, 80)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90 degrees clockwise
    out = load_image(_encode(Image.fromarray(pixels), "PNG", exif=exif))
    np.testing.assert_array_equal(out, np.rot90(pixels, k=-1))


def test_rgba_is_composited_on_white_and_grayscale_expanded():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:20, :, 3] = 255  # top half opaque red, bottom half transparent
    out = load_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[-1, -1], [255, 255, 255])
    gray = load_image(_encode(Image.fromarray(np.full((40, 40), 77, np.uint8), "L"), "PNG"))
    assert gray.shape == (40, 40, 3) and (gray == 77).all()


def test_sixteen_bit_png_is_scaled_to_eight_bits():
    img = Image.fromarray(np.full((40, 40), 65535, np.uint16))
    out = load_image(_encode(img, "PNG"))
    assert out.dtype == np.uint8 and (out == 255).all()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"this is text, not a picture", "not an image"),
    ],
)
def test_bad_bytes_raise_a_readable_error(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_jpeg_and_tiny_images_are_refused(tmp_path):
    full = _encode(Image.fromarray(_gradient(300, 400)), "JPEG")
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(full[: len(full) // 3])
    with pytest.raises(ImageError, match="at least 32x32"):
        load_image(_encode(Image.new("RGB", (1, 1)), "PNG"))
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.jpg")


def test_resize_policy_keeps_4_to_3_images_undistorted():
    height, width = INPUT_SIZE
    assert width * 3 == height * 4  # the input is 4:3, like HAM10000
    big = np.zeros((450, 600, 3), np.uint8)
    big[:, :300] = 255  # left half white
    small = resize(big)
    assert small.shape == (*INPUT_SIZE, 3)
    assert small[:, : width // 2 - 1].min() == 255 and small[:, width // 2 + 1 :].max() == 0


def test_scale_maps_pixels_to_mobilenet_range():
    np.testing.assert_allclose(scale(np.array([0.0, 127.5, 255.0])), [-1.0, 0.0, 1.0])


def test_prepare_batch_validates_arrays():
    batch = prepare_batch([_gradient(60, 80), _gradient(300, 200)])
    assert batch.shape == (2, *INPUT_SIZE, 3) and batch.dtype == np.float32
    with pytest.raises(ImageError, match="uint8"):
        prepare_batch([_gradient().astype(np.float32)])
    with pytest.raises(ImageError, match="HxWx3"):
        prepare_batch([np.zeros((60, 80), np.uint8)])
    with pytest.raises(ImageError, match="no images"):
        prepare_batch([])
    with pytest.raises(ImageError, match="sequence"):
        prepare_batch(_gradient())


def test_has_transparency_tells_which_files_get_white_filled_in(tmp_path):
    """Issue 31: a transparent PNG was filled with white silently, and the white changed the answer."""
    from PIL import Image

    from model.preprocessing import has_transparency
    from tests.hostile import _rgba, lesion

    cases = {"partly.png": _rgba(), "opaque_alpha.png": None, "palette.png": None, "plain.jpg": None}
    opaque = np.dstack([lesion(), np.full((150, 200), 255, np.uint8)])
    Image.fromarray(opaque, "RGBA").save(tmp_path / "opaque_alpha.png")
    palette = Image.fromarray(lesion()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(tmp_path / "palette.png", transparency=0)
    Image.fromarray(lesion()).save(tmp_path / "plain.jpg")
    (tmp_path / "partly.png").write_bytes(cases["partly.png"])
    found = {name: has_transparency(str(tmp_path / name)) for name in cases}
    assert found == {"partly.png": True, "opaque_alpha.png": False, "palette.png": True, "plain.jpg": False}
    assert has_transparency(cases["partly.png"]) and not has_transparency(b"not an image")
