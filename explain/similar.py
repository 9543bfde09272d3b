"""Similar confirmed cases: the training images the model finds closest, with their known diagnoses.

A heatmap says where the model looked, not what it thinks the lesion resembles. Content-based
retrieval answers that (Tschandl et al., Nature Medicine 26, 1229-1234, 2020, tested it as one
form of decision support for dermatologists): the image is embedded with the same runtime call
that classifies it (the pooled ``out_relu`` features, which the head reads), and compared with a
gallery of the model's own training-split images, each with how its diagnosis was confirmed.

The gallery (``gallery.npz`` beside the model, built by ``python -m training gallery``) holds a
projection fitted on the training features (``mean``, ``projection``: PCA whitening, or the
identity for raw / L2-normalised embeddings), the gallery's embeddings, already projected and
L2-normalised, and small JPEG thumbnails.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from model.preprocessing import check_image
from model.runtime import ClassifierLike

GALLERY_FILE = "gallery.npz"
CONFIRMED_BY = {"histo": "histopathology", "follow_up": "follow-up", "consensus": "expert consensus",
                "confocal": "confocal microscopy"}  # HAM10000's dx_type codes


def project(pooled: np.ndarray, mean: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """(M, C) pooled features, centred and projected, then L2-normalised (cosine similarity is a dot product)."""
    projected = (np.asarray(pooled, np.float32) - mean) @ projection
    return projected / np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Gallery:
    image_ids: np.ndarray  # (N,) str
    dx: np.ndarray  # (N,) str, CLASSES codes
    dx_type: np.ndarray  # (N,) str: histo, follow_up, consensus, confocal
    mean: np.ndarray  # (C,) float32, subtracted before the projection
    projection: np.ndarray  # (C, d) float32
    embeddings: np.ndarray  # (N, d) L2-normalised; float16 in the file (half its size, cosines to ~1e-3)
    jpeg: np.ndarray  # (total,) uint8: the thumbnails' JPEG bytes, one after another
    offsets: np.ndarray  # (N + 1,) int64: thumbnail i is jpeg[offsets[i]:offsets[i + 1]]

    def embed(self, pooled: np.ndarray) -> np.ndarray:
        """(M, C) pooled features -> (M, d) L2-normalised embeddings in the gallery's space."""
        return project(pooled, self.mean, self.projection)

    def thumbnail(self, i: int) -> np.ndarray:
        data = self.jpeg[self.offsets[i]:self.offsets[i + 1]].tobytes()
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def nearest(self, embedding: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and similarities in [0, 1] ((1 + cosine) / 2) of the k closest, most similar first."""
        cosine = self.embeddings @ embedding
        k = min(k, len(cosine))
        top = np.argpartition(-cosine, k - 1)[:k]
        top = top[np.lexsort((top, -cosine[top]))]  # ties broken by gallery order: deterministic
        return top, np.clip((1 + cosine[top]) / 2, 0.0, 1.0)


def save_gallery(path: str | os.PathLike[str], gallery: Gallery) -> None:
    np.savez_compressed(path, **{name: getattr(gallery, name) for name in Gallery.__dataclass_fields__})


@cache
def load_gallery(path: str | os.PathLike[str]) -> Gallery:
    """The gallery file (read once per path); FileNotFoundError names what builds it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no similar-cases gallery at {path}; build one with "
                                f"`python -m training gallery {path.parent} --data HAM10000_DIR`")
    with np.load(path, allow_pickle=False) as data:
        fields = {name: data[name] for name in Gallery.__dataclass_fields__}
    fields["embeddings"] = fields["embeddings"].astype(np.float32)  # once, not per query (32 MB for 6,277 x 1280)
    return Gallery(**fields)


def gallery_of(clf) -> Gallery:
    """The gallery exported with this classifier's model (a gallery belongs to one model)."""
    return load_gallery(Path(clf.path).parent / GALLERY_FILE)


def pooled_features(clf, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, 7), pooled ``out_relu`` features (N, C)) from the runtime's one call."""
    probs, features = clf.predict_with_features(images)
    return probs, features.mean(axis=(1, 2))


def similar_cases(clf: ClassifierLike, image: np.ndarray, k: int = 6) -> list[dict]:
    """The k most similar training-split images, most similar first.

    Each: ``image_id``, ``dx``, ``dx_type`` (how the diagnosis was confirmed), ``similarity`` in
    [0, 1] and ``thumbnail`` (HxWx3 uint8).
    """
    check_image(image)
    _, pooled = pooled_features(clf, [image])
    return cases_for(gallery_of(clf), pooled[0], k)


def cases_for(gallery: Gallery, pooled: np.ndarray, k: int = 6) -> list[dict]:
    """``similar_cases`` from (C,) pooled features already computed (the app's one runtime call)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    index, similarity = gallery.nearest(gallery.embed(pooled[None])[0], k)
    return [{"image_id": str(gallery.image_ids[i]), "dx": str(gallery.dx[i]), "dx_type": str(gallery.dx_type[i]),
             "similarity": float(s), "thumbnail": gallery.thumbnail(int(i))}
            for i, s in zip(index, similarity, strict=True)]
