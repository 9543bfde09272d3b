"""Odd and hostile files, made on the fly: (name, bytes, expected message or None for an answer)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

NORMAL = None  # the case must be answered like any image


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def lesion(h: int = 150, w: int = 200) -> np.ndarray:
    """A brown blob on skin tone with a gradient, so orientation and cropping show."""
    yy, xx = np.mgrid[:h, :w]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = 200 + (xx * 40 // w)
    img[..., 1] = 160 - (yy * 30 // h)
    img[..., 2] = 150
    blob = (yy - h * 0.45) ** 2 + (xx - w * 0.55) ** 2 < (min(h, w) * 0.25) ** 2
    img[blob] = (110, 70, 50)
    return img


def _bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A small PNG whose header claims width x height pixels."""
    data = bytearray(_png(Image.new("L", (64, 64))))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def _corrupt_png() -> bytes:
    data = bytearray(_png(Image.fromarray(lesion())))
    idat = data.index(b"IDAT")
    for i in range(idat + 20, idat + 60):
        data[i] ^= 0x5A
    return bytes(data)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(Image.fromarray(lesion()), exif=exif, quality=95)


def _gif() -> bytes:
    frames = [Image.fromarray(np.full((64, 64, 3), c, np.uint8)) for c in ((200, 30, 30), (30, 200, 30))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _tiff_pages() -> bytes:
    pages = [Image.fromarray(lesion()), Image.fromarray(255 - lesion())]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


def _palette() -> bytes:
    return _png(Image.fromarray(lesion()).convert("P", palette=Image.Palette.ADAPTIVE, colors=32))


def _rgba() -> bytes:
    rgba = np.dstack([lesion(), np.full((150, 200), 255, np.uint8)])
    rgba[:, :50, 3] = 0
    return _png(Image.fromarray(rgba, "RGBA"))


def _huge_jpeg() -> bytes:
    """About 40 megapixels (7300x5480)."""
    small = Image.fromarray(lesion(137, 183))
    return _jpeg(small.resize((7300, 5480), Image.Resampling.NEAREST), quality=60)


FILES: dict[str, tuple] = {
    # name: (builder, expected message fragment or NORMAL)
    "empty.jpg": (lambda: b"", "empty"),
    "text.jpg": (lambda: b"Dear diary, today I renamed a text file.\n" * 20, "not an image file"),
    "truncated.jpg": (lambda: _jpeg(Image.fromarray(lesion(600, 800)))[:5000], "damaged or truncated"),
    "corrupt.png": (_corrupt_png, "damaged or truncated"),
    "one_pixel.png": (lambda: _png(Image.new("RGB", (1, 1), (120, 80, 60))), "at least 32x32"),
    "tiny.png": (lambda: _png(Image.fromarray(lesion(20, 24))), "at least 32x32"),
    "bomb.png": (_bomb_png, "too large"),
    "bomb_90mp.png": (lambda: _bomb_png(10000, 9000), "too large"),  # where Pillow only warns
    "huge.jpg": (_huge_jpeg, NORMAL),
    "sixteen_bit.png": (lambda: _png(Image.fromarray(lesion()[..., 0].astype(np.uint16) * 257)), NORMAL),
    "grayscale.png": (lambda: _png(Image.fromarray(lesion()).convert("L")), NORMAL),
    "rgba.png": (_rgba, NORMAL),
    "palette.png": (_palette, NORMAL),
    "cmyk.jpg": (lambda: _jpeg(Image.fromarray(lesion()).convert("CMYK")), NORMAL),
    "exif_rotated.jpg": (_exif_rotated, NORMAL),
    "animated.gif": (_gif, NORMAL),
    "pages.tiff": (_tiff_pages, NORMAL),
    "photo.heic": (lambda: b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 200, "HEIC/AVIF is an unsupported"),
    "drawing.svg": (lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" '
                    b'height="64"><circle cx="32" cy="32" r="20"/></svg>', "SVG is an unsupported"),
    "black.png": (lambda: _png(Image.new("RGB", (200, 150), (0, 0, 0))), NORMAL),
    "white.png": (lambda: _png(Image.new("RGB", (200, 150), (255, 255, 255))), NORMAL),
}


def write_all(folder) -> dict[str, tuple]:
    """Write every case into ``folder``; returns name -> (path, expected)."""
    out = {}
    for name, (build, expected) in FILES.items():
        path = folder / name
        path.write_bytes(build())
        out[name] = (path, expected)
    return out
