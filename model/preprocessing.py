"""One image path for training and serving: decode -> RGB uint8 -> resize -> MobileNetV2 scaling.

Resize policy: the whole image is resized to the network's input size (by default
150x200 px, height x width, the 4:3 size the HAM10000 copy here is stored at), without
cropping or padding. HAM10000 images are 4:3, so they keep their shape exactly; images of
another aspect ratio are stretched rather than cropped, so no part of what the user sent
is hidden from the model and every heatmap maps back onto the whole image. Shrinking uses
area averaging (no aliasing), enlarging uses bilinear interpolation.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

INPUT_SIZE: tuple[int, int] = (150, 200)  # (height, width)
MIN_SIDE = 32  # smaller images carry too little detail to classify
MAX_PIXELS = 80_000_000  # larger claims are refused before decoding (decompression bombs)
MAX_DECODE_SIDE = 2048  # larger JPEGs are decoded at 1/2, 1/4 or 1/8 scale (long side 1024-2047 px)

# Pillow warns above MAX_IMAGE_PIXELS and refuses at twice that. The warning is made an error for the whole
# process, once: a ``catch_warnings`` around each open is not thread-safe (the CLI and the server open images
# in threads), and a thread that ran while another restored the filters printed the warning.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


class ImageError(ValueError):
    """An input that is not a usable image; the message is meant for the person who sent it."""


def load_image(source: str | os.PathLike[str] | bytes | Image.Image) -> np.ndarray:
    """Decode a file, bytes or PIL image to an RGB uint8 array, EXIF orientation applied.

    Reads any format Pillow knows (JPEG, PNG, WebP, BMP, TIFF, GIF, ...); animated or
    multi-page files give their first frame; transparency is composited onto white;
    16-bit and float images are scaled to 8 bits. Raises ImageError naming the file.
    """
    prefix = "" if isinstance(source, (bytes, bytearray, Image.Image)) else f"{os.path.basename(source)}: "
    try:
        return _to_rgb_array(_open(source))
    except ImageError as exc:
        raise ImageError(prefix + str(exc)) from exc
    except FileNotFoundError as exc:
        raise ImageError(prefix + "file not found") from exc
    except IsADirectoryError as exc:
        raise ImageError(prefix + "is a folder, not an image") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(prefix + _unsupported_reason(source)) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(prefix + f"image too large (more than {MAX_PIXELS:,} pixels)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(prefix + f"the image data is damaged or truncated ({exc})") from exc


def _open(source) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("the file is empty (0 bytes)")
        source = io.BytesIO(source)
    elif os.path.getsize(source) == 0:
        raise ImageError("the file is empty (0 bytes)")
    return Image.open(source)  # over MAX_PIXELS: DecompressionBombWarning, raised (the filter above)


SUPPORTED = "JPEG, PNG, WebP, BMP, TIFF or GIF"
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def has_transparency(source: str | os.PathLike[str] | bytes) -> bool:
    """Whether ``load_image`` fills see-through pixels of this file with white (which changes the answer:
    the model never saw transparency), so that the app can say so. Reads pixels only of files with alpha."""
    try:
        with _open(source) as img:
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")
            return img.mode in ALPHA_MODES and img.convert("RGBA").getextrema()[3][0] < 255
    except (OSError, ValueError, SyntaxError, EOFError, ImageError, Image.DecompressionBombWarning,
            Image.DecompressionBombError):
        return False


def _unsupported_reason(source) -> str:
    """Name the format when it is a known one Pillow cannot read (HEIC, SVG, PDF)."""
    try:
        if isinstance(source, (bytes, bytearray)):
            head = bytes(source[:1024])
        else:
            with open(source, "rb") as fh:
                head = fh.read(1024)
    except (OSError, TypeError):
        head = b""
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc", b"avif"):
        kind = "HEIC/AVIF"
    elif b"<svg" in head.lower():
        kind = "SVG"
    elif head.startswith(b"%PDF"):
        kind = "PDF"
    else:
        return f"not an image file, or an unsupported format (use {SUPPORTED})"
    return f"{kind} is an unsupported format; convert it to {SUPPORTED}"


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageError(f"image too large: {width}x{height} px (at most {MAX_PIXELS:,} pixels)")
    if img.format == "JPEG" and max(width, height) > MAX_DECODE_SIDE:
        # draft keeps at least the requested size: ask for half the limit
        factor = MAX_DECODE_SIDE / 2 / max(width, height)
        img.draft("RGB", (int(width * factor), int(height * factor)))
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(np.nan_to_num(array) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(array, mode="L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    check_image(rgb)
    return np.ascontiguousarray(rgb)


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an HxWx3 uint8 RGB array, raising ImageError with a readable reason."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an HxWx3 RGB array, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected dtype uint8 (0-255), got {image.dtype}")
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ImageError(f"image is {width}x{height} px; at least {MIN_SIDE}x{MIN_SIDE} px is needed")
    return image


def resize(image: np.ndarray, size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """Resize an HxWx3 uint8 image to ``size`` (height, width) by the policy above."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    shrinking = image.shape[0] * image.shape[1] > height * width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def scale(pixels):
    """MobileNetV2 input scaling, 0..255 -> -1..1. Works on numpy arrays and tensors alike."""
    return pixels * (1.0 / 127.5) - 1.0


def prepare_batch(images: Sequence[np.ndarray], size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """Validate, resize and scale images into one float32 (N, H, W, 3) network input."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
        raise ImageError("expected a sequence of images; wrap a single image in a list")
    if len(images) == 0:
        raise ImageError("no images given")
    batch = np.empty((len(images), *size, 3), dtype=np.float32)
    for i, image in enumerate(images):
        batch[i] = scale(resize(check_image(image), size).astype(np.float32))
    return batch
