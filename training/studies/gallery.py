"""The similar-cases gallery of an exported model: its training-split images, embedded, with thumbnails.

Built from the training split only (a validation or test image in the gallery would let the
retrieval figures below, and the page, show the very lesion being asked about). The embedding is
chosen on the validation split among those ``explain.similar`` can serve, by the balanced accuracy
of the six cases' similarity-weighted vote; the test split is scored once, after the choice.
Raw Euclidean distance is measured beside them as the plain reference.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.decomposition import PCA

from explain.similar import GALLERY_FILE, Gallery, pooled_features, project, save_gallery
from model.card import read_json
from model.labels import CLASSES
from model.preprocessing import resize
from model.runtime import load_classifier, sha256

from ..card import record
from ..data import card_split, load_arrays
from ..external import STATISTICS

K = 6
THUMBNAIL = (60, 80)  # height, width: 4:3, about 2 KB as JPEG
JPEG_QUALITY = 80
PCA_DIMS = (64, 128, 256)
SERVABLE = ("cosine", *(f"pca_whitened_{d}" for d in PCA_DIMS))  # what explain.similar can serve
CANDIDATES = ("euclidean", *SERVABLE)


def fit_projection(kind: str, pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, projection) for an embedding: identity for cosine, PCA whitening to d dims otherwise."""
    channels = pooled.shape[1]
    if kind in ("cosine", "euclidean"):
        return np.zeros(channels, np.float32), np.eye(channels, dtype=np.float32)

    pca = PCA(n_components=int(kind.rsplit("_", 1)[1]), whiten=True, random_state=0).fit(pooled)
    return pca.mean_.astype(np.float32), (pca.components_.T / np.sqrt(pca.explained_variance_)).astype(np.float32)


def _embed(kind: str, pooled: np.ndarray, mean: np.ndarray, projection: np.ndarray) -> np.ndarray:
    return pooled if kind == "euclidean" else project(pooled, mean, projection)


def retrieve(kind: str, gallery: np.ndarray, queries: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """(indices (M, k), similarities (M, k) in [0, 1]) of each query's k nearest gallery items.

    ``gallery`` and ``queries`` are already embedded; Euclidean similarity is 1 / (1 + distance).
    """
    if kind == "euclidean":
        squared = (queries**2).sum(1)[:, None] + (gallery**2).sum(1)[None] - 2 * queries @ gallery.T
        distance = np.sqrt(np.maximum(squared, 0))
        index = np.argsort(distance, axis=1, kind="stable")[:, :k]
        return index, 1 / (1 + np.take_along_axis(distance, index, 1))
    cosine = queries @ gallery.T
    index = np.argsort(-cosine, axis=1, kind="stable")[:, :k]
    return index, np.clip((1 + np.take_along_axis(cosine, index, 1)) / 2, 0, 1)


def retrieval_metrics(gallery_labels: np.ndarray, labels: np.ndarray, index: np.ndarray,
                      similarity: np.ndarray) -> dict:
    """How often the true class is among the k cases; the balanced accuracy of their weighted vote."""
    neighbours = gallery_labels[index]
    votes = np.zeros((len(labels), len(CLASSES)))
    np.add.at(votes, (np.arange(len(labels))[:, None], neighbours), similarity)
    vote = votes.argmax(1)
    return {
        "true_class_among_k": float((neighbours == labels[:, None]).any(1).mean()),
        "vote_balanced_accuracy": float(np.mean([(vote[labels == c] == c).mean() for c in np.unique(labels)])),
    }


def _thumbnails(images: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    chunks = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(resize(image, size)).save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        chunks.append(np.frombuffer(buffer.getvalue(), np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    return np.concatenate(chunks), offsets


def build(export_dir: str | Path, data: str | Path, seed: int = 0, thumbnail: tuple[int, int] = THUMBNAIL) -> dict:
    """Measure the embeddings, write ``gallery.npz`` with the chosen one, record it in the card; returns the section."""
    export_dir = Path(export_dir)
    card = read_json(export_dir)
    clf = load_classifier(export_dir)
    meta = card_split(card, data, seed)
    parts = {name: meta[meta.split == name].reset_index(drop=True) for name in ("train", "val", "test")}
    images = {name: load_arrays(list(part.path), clf.input_size, desc=name) for name, part in parts.items()}
    probs, pooled = {}, {}  # one runtime pass per split gives both the answers and the embeddings
    for name, x in images.items():
        chunks = [pooled_features(clf, list(x[i:i + 64])) for i in range(0, len(x), 64)]
        probs[name], pooled[name] = (np.concatenate(part) for part in zip(*chunks, strict=True))
    labels = {name: part.label.to_numpy() for name, part in parts.items()}

    measured, fitted = {}, {}
    fits = min(pooled["train"].shape)  # PCA cannot keep more dimensions than it has images (tiny data)
    for kind in (k for k in CANDIDATES if not k.startswith("pca") or int(k.rsplit("_", 1)[1]) < fits):
        mean, projection = fitted[kind] = fit_projection(kind, pooled["train"])
        gallery = _embed(kind, pooled["train"], mean, projection)
        measured[kind] = {split: retrieval_metrics(labels["train"], labels[split],
                                                   *retrieve(kind, gallery, _embed(kind, pooled[split], mean,
                                                                                   projection)))
                          for split in ("val", "test")}
    chosen = max((k for k in SERVABLE if k in measured), key=lambda k: measured[k]["val"]["vote_balanced_accuracy"])
    mean, projection = fitted[chosen]
    jpeg, offsets = _thumbnails(images["train"] if thumbnail == clf.input_size else
                                load_arrays(list(parts["train"].path), thumbnail, desc="thumbnails"), thumbnail)
    train = parts["train"]
    save_gallery(export_dir / GALLERY_FILE, Gallery(
        image_ids=train.image_id.to_numpy(str), dx=train.dx.to_numpy(str),
        dx_type=train.dx_type.fillna("unknown").to_numpy(str), mean=mean, projection=projection,
        embeddings=_embed(chosen, pooled["train"], mean, projection).astype(np.float16), jpeg=jpeg, offsets=offsets))

    classifier_bacc = {split: STATISTICS["balanced_accuracy"](labels[split], probs[split]) for split in ("val", "test")}
    section = {
        "file": GALLERY_FILE,
        "sha256": sha256(export_dir / GALLERY_FILE),
        "bytes": (export_dir / GALLERY_FILE).stat().st_size,
        "images": int(len(train)),
        "from": "the training split only (HAM10000; no validation or test image)",
        "thumbnail": {"height": thumbnail[0], "width": thumbnail[1], "jpeg_quality": JPEG_QUALITY},
        "k": K,
        "embedding": chosen,
        "chosen_on": "validation: balanced accuracy of the k cases' similarity-weighted vote",
        "measured": measured,
        "classifier_balanced_accuracy": classifier_bacc,
    }
    record(export_dir, {"similar_cases": section})
    return section
