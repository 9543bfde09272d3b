"""Images that are not dermoscopic, for reporting the out-of-distribution flag.

Made here, nothing downloaded: the photographs and micrographs that scikit-image ships, plus
solid colours, gradients, noise, checkerboards, stripes and rendered text.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SKIMAGE_IMAGES = ("astronaut", "brick", "camera", "cat", "chelsea", "clock", "coffee", "coins", "colorwheel",
                  "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon",
                  "page", "retina", "rocket", "text", "cell")


def _rgb(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = (255 * (array.astype(float) - array.min()) / max(float(np.ptp(array)), 1e-9)).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, -1)
    return np.ascontiguousarray(array[..., :3])


def non_dermoscopic_images(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    import skimage.data

    rng = np.random.default_rng(seed)
    images = []
    for name in SKIMAGE_IMAGES:
        try:
            images.append((f"skimage.{name}", _rgb(getattr(skimage.data, name)())))
        except Exception:  # noqa: BLE001 - an image this scikit-image build lacks
            continue
    h, w = 300, 400
    for i, colour in enumerate(rng.integers(0, 256, (8, 3))):
        images.append((f"solid{i}", np.full((h, w, 3), colour, np.uint8)))
    images += [("black", np.zeros((h, w, 3), np.uint8)), ("white", np.full((h, w, 3), 255, np.uint8))]
    yy, xx = np.mgrid[:h, :w]
    images.append(("gradient", np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 128)], -1).astype(np.uint8)))
    for i in range(4):
        images.append((f"noise{i}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    for size in (10, 40):
        board = ((yy // size + xx // size) % 2 * 255).astype(np.uint8)
        images.append((f"checkerboard{size}", np.stack([board] * 3, -1)))
    images.append(("stripes", np.stack([((xx // 12) % 2 * 200).astype(np.uint8)] * 3, -1)))
    for i, text in enumerate(("Quarterly report 2026", "def main():\n    return 0", "ERROR 404 page not found")):
        img = Image.new("RGB", (w, h), (255, 255, 255) if i % 2 == 0 else (30, 30, 30))
        draw = ImageDraw.Draw(img)
        for line in range(8):
            draw.text((10, 10 + 35 * line), text, fill=(0, 0, 0) if i % 2 == 0 else (220, 220, 220))
        images.append((f"text{i}", np.asarray(img)))
    return images
