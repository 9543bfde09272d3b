"""The explanations' quality, measured on an exported model's own split (explain/quality.py).

Grad-CAM and LIME as the app shows them (top class, LIME's seed and sample count as served) on a
class-balanced sample of each split, scored for localisation against the lesion boxes of
``lesion_boxes.csv`` and for faithfulness by deletion and insertion, beside two maps that know
nothing of the model: a centred Gaussian and random noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from model.labels import CLASSES
from model.metrics import bootstrap_intervals
from model.preprocessing import load_image

BOXES_FILE = "lesion_boxes.csv"
METRICS = ("pointing_hit", "energy_in_box", "deletion_auc", "insertion_auc")
METHODS = ("Grad-CAM", "LIME", "centre prior", "random")


def read_boxes(data_dir: str | Path) -> pd.DataFrame:
    """lesion_boxes.csv: image_id -> top, bottom, left, right in the image file's pixels."""
    path = Path(data_dir) / BOXES_FILE
    boxes = pd.read_csv(path)
    missing = {"image_id", "top", "bottom", "left", "right"} - set(boxes.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}")
    return boxes.set_index("image_id")


def balanced_sample(part: pd.DataFrame, images: int, seed: int = 0) -> pd.DataFrame:
    """Up to ``images`` rows, as many of each class as it has up to an equal share (classes weigh alike)."""
    share = int(np.ceil(images / len(CLASSES)))
    picked = [rows.sample(n=min(share, len(rows)), random_state=seed) for _, rows in part.groupby("label")]
    return pd.concat(picked).sort_index()


def saliency_maps(clf, image: np.ndarray, rng: np.random.Generator) -> tuple[int, dict[str, np.ndarray]]:
    """The top class and each method's map at the image's size."""
    from explain.gradcam import grad_cam
    from explain.lime import explain_lime
    from explain.quality import centre_prior

    lime = explain_lime(clf, image)
    shape = image.shape[:2]
    return lime.label, {
        "Grad-CAM": grad_cam(clf, image, lime.label),
        "LIME": lime.weights,
        "centre prior": centre_prior(shape),
        "random": rng.random(shape).astype(np.float32),
    }


def score_image(clf, image: np.ndarray, box: tuple, rng: np.random.Generator) -> tuple[dict, dict]:
    """Each method's four metrics on one image, and its deletion and insertion curves."""
    from explain.quality import box_mask, deletion_insertion, energy_share, pointing_hit

    label, maps = saliency_maps(clf, image, rng)
    mask = box_mask(image.shape[:2], box, image.shape[:2])
    scores, curves = {}, {}
    for method, saliency in maps.items():
        faithfulness = deletion_insertion(clf, image, saliency, label)
        scores[method] = {
            "pointing_hit": float(pointing_hit(saliency, mask)),
            "energy_in_box": energy_share(saliency, mask),
            "deletion_auc": faithfulness["deletion_auc"],
            "insertion_auc": faithfulness["insertion_auc"],
        }
        curves[method] = (faithfulness["deletion"], faithfulness["insertion"])
    scores["box_area"] = float(mask.mean())
    return scores, curves


def summarise(per_image: list[dict], lesions: np.ndarray) -> dict:
    """Mean of each method's metrics with a 95% bootstrap interval over lesions."""
    summary = {"box_area": float(np.mean([s["box_area"] for s in per_image]))}
    for method in METHODS:
        table = np.array([[s[method][m] for m in METRICS] for s in per_image], dtype=float)
        statistics = {m: (lambda _, t, j=j: float(np.nanmean(t[:, j]))) for j, m in enumerate(METRICS)}
        bounds = bootstrap_intervals(np.zeros(len(table)), table, lesions, statistics)
        summary[method] = {m: float(np.nanmean(table[:, j])) for j, m in enumerate(METRICS)}
        summary[method].update({f"{m}_ci95": bounds[m] for m in METRICS})
    return summary


def plot_curves(curves: dict[str, list], path: Path) -> None:
    """Mean deletion and insertion curves of each method (test split)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for method, pairs in curves.items():
        for ax, k in zip(axes, (0, 1), strict=True):
            mean = np.mean([pair[k] for pair in pairs], axis=0)
            ax.plot(np.linspace(0, 1, len(mean)), mean, label=method, marker=".")
    for ax, title in zip(axes, ("Deletion: top pixels blurred away", "Insertion: top pixels put back"), strict=True):
        ax.set(title=title, xlabel="share of pixels, most salient first", ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("probability of the explained class")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


FIGURE = "explanations_test.png"


def measure_exported(export_dir: str | Path, data: str | Path, images: int = 70, seed: int = 0) -> dict:
    """Score the explanations of an exported model on ``images`` per split; into its card, in place."""
    from model.runtime import load_classifier

    from .data import card_split
    from .export import CARD_FILE, write_card

    export_dir = Path(export_dir)
    card = json.loads((export_dir / CARD_FILE).read_text())
    meta = card_split(card, data, seed)
    boxes = read_boxes(data)
    clf = load_classifier(export_dir)
    rng = np.random.default_rng(seed)
    results, test_curves = {}, {m: [] for m in METHODS}
    for name in ("val", "test"):
        part = balanced_sample(meta[meta.split == name], images, seed)
        per_image = []
        for row in tqdm(list(part.itertuples()), desc=f"explaining {name}", mininterval=10):
            box = tuple(boxes.loc[row.image_id, ["top", "bottom", "left", "right"]])
            scores, curves = score_image(clf, load_image(row.path), box, rng)
            per_image.append(scores)
            for method in METHODS if name == "test" else ():
                test_curves[method].append(curves[method])
        results[name] = {"images": len(part), **summarise(per_image, part.lesion_id.to_numpy())}
    plot_curves(test_curves, export_dir / FIGURE)
    card["explanations"] = {
        "sample": f"an equal share of each class, fewer where a class has fewer; seed {seed}",
        "figure": FIGURE,
        **results,
    }
    write_card(export_dir, card)
    return card["explanations"]
