"""Which superpixels LIME should perturb, measured: the segmentations of ``explain.lime.SEGMENTATIONS``.

LIME can only say what its superpixels let it say: one that spills from the lesion into the skin
credits both. Each candidate explains the top class on a class-balanced sample of each split,
scored for how much of the area of its five strongest supporting superpixels lies in the lesion
box (the team's measure, there against hand-drawn masks), the mass of its positive weights in the
box, deletion and insertion, ROAD, and its seconds per explanation at the served 1000 samples; each
paired against the served segmentation on the same images, and its faithfulness (deletion,
insertion, ROAD) also against the centred prior and a random map. Choose on validation.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from explain.lime import SEGMENTATION, SEGMENTATIONS, explain_lime
from explain.quality import box_mask, energy_share
from model.labels import CLASSES
from model.runtime import load_classifier

from ..card import record
from ..data import card_split
from .explanations import BASELINES, FAITHFULNESS, blind_maps, boxed_sample, faithfulness, summarise

IMAGES_PER_SPLIT = 35  # 5 of each class where it has them: about 1.5 s per explanation on 2 cores, ROAD 1.5 s a map
TOP = 5  # superpixels
METRICS = ("top5_in_box", "energy_in_box", "deletion_auc", "insertion_auc", "road", "seconds")


def top_support_in_box(weights: np.ndarray, segments: np.ndarray, mask: np.ndarray, top: int = TOP) -> float:
    """Share of the area of the ``top`` superpixels with the largest positive weights that lies in ``mask``.

    NaN when no superpixel supports the class.
    """
    ids = np.unique(segments)
    weight_of = np.array([weights[segments == i].flat[0] for i in ids])
    chosen = ids[np.argsort(-weight_of)[:top]]
    chosen = chosen[weight_of[np.searchsorted(ids, chosen)] > 0]
    if chosen.size == 0:
        return float("nan")
    area = np.isin(segments, chosen)
    return float((area & mask).sum() / area.sum())


def score_image(clf, image: np.ndarray, box: tuple, samples: int, rng: np.random.Generator) -> list[dict]:
    """Every segmentation's metrics on one image; then the centred prior's and a random map's faithfulness."""
    mask = box_mask(image.shape[:2], box, image.shape[:2])
    rows = []
    for name in SEGMENTATIONS:
        start = time.perf_counter()
        lime = explain_lime(clf, image, num_samples=samples, segmentation=name)
        seconds = time.perf_counter() - start
        rows.append({"method": name, "explained": CLASSES[lime.label], "segments": int(lime.segments.max() + 1),
                     "top5_in_box": top_support_in_box(lime.weights, lime.segments, mask),
                     "energy_in_box": energy_share(lime.weights, mask), "seconds": seconds,
                     **faithfulness(clf, image, lime.weights, lime.label), "box_area": float(mask.mean())})
    for name, blind in blind_maps(image.shape[:2], rng).items():
        rows.append({"method": name, "explained": CLASSES[lime.label], "box_area": float(mask.mean()),
                     **faithfulness(clf, image, blind, lime.label)})
    return rows


def measure_exported(export_dir: str | Path, data: str | Path, images: int = IMAGES_PER_SPLIT, seed: int = 0,
                     samples: int = 1000) -> dict:
    """Score every segmentation on ``images`` per split of an exported model; into its card (``lime_segmentations``)."""
    export_dir = Path(export_dir)
    clf = load_classifier(export_dir)
    card = clf.card().to_json()
    meta = card_split(card, data, seed)
    rng = np.random.default_rng(seed)
    rows = [{"split": name, "image_id": row.image_id, "lesion_id": row.lesion_id, **scored}
            for name, row, image, box in boxed_sample(meta, data, images, seed, "segmentations on")
            for scored in score_image(clf, image, box, samples, rng)]
    frame = pd.DataFrame(rows)
    frame.to_csv(export_dir / "lime_segmentations.csv", index=False, float_format="%.5g")
    others = tuple(n for n in SEGMENTATIONS if n != SEGMENTATION)
    section = {"served": SEGMENTATION, "samples": samples, "per_image": "lime_segmentations.csv",
               "settings": {n: {"algorithm": a, **p} for n, (a, p) in SEGMENTATIONS.items()}}
    for name in ("val", "test"):
        part = frame[frame.split == name]
        section[name] = summarise(part[part.method.isin(SEGMENTATIONS)], tuple(SEGMENTATIONS), others, METRICS,
                                  baseline=SEGMENTATION)
        section[name]["segments"] = {n: float(part[part.method == n].segments.median()) for n in SEGMENTATIONS}
        section[name]["faithfulness"] = summarise(part, (*SEGMENTATIONS, *BASELINES), tuple(SEGMENTATIONS),
                                                  FAITHFULNESS, BASELINES)
    record(export_dir, {"lime_segmentations": section})
    return section
