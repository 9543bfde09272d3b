"""The explanations' quality, measured on an exported model's own split (explain/quality.py).

Grad-CAM and LIME as the app shows them (top class, LIME's seed and sample count as served) on a
class-balanced sample of each split, scored for localisation against the lesion boxes of
``lesion_boxes.csv`` and for faithfulness by deletion and insertion, beside two maps that know
nothing of the model: a centred Gaussian and random noise.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm import tqdm

from explain.gradcam import grad_cam
from explain.lime import explain_lime
from explain.quality import box_mask, centre_prior, deletion_insertion, energy_share, pointing_hit, road
from model.labels import CLASSES
from model.metrics import bootstrap_intervals
from model.preprocessing import load_image
from model.runtime import load_classifier

from ..card import record
from ..data import card_split

BOXES_FILE = "lesion_boxes.csv"
METRICS = ("pointing_hit", "energy_in_box", "deletion_auc", "insertion_auc")
METHODS = ("Grad-CAM", "LIME", "centre prior", "random")
COMPARED = ("Grad-CAM", "LIME")  # the app's maps, each also given minus the centre prior
IMAGES_PER_SPLIT = 140  # 20 of each class where it has them: about 1.5 s each on 2 cores, mostly LIME


def read_boxes(data_dir: str | Path) -> pd.DataFrame:
    """lesion_boxes.csv: image_id -> top, bottom, left, right in the image file's pixels."""
    path = Path(data_dir) / BOXES_FILE
    boxes = pd.read_csv(path)
    missing = {"image_id", "top", "bottom", "left", "right"} - set(boxes.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}")
    return boxes.set_index("image_id")


def balanced_sample(part: pd.DataFrame, images: int, seed: int = 0) -> pd.DataFrame:
    """Up to ``images`` rows, as many of each class as it has up to an equal share (classes weigh alike).

    Where the shares round up past ``images`` (fewer images than classes, say), the classes give their
    rows in turn until ``images`` are taken.
    """
    share = int(np.ceil(images / len(CLASSES)))
    picked = pd.concat([rows.sample(n=min(share, len(rows)), random_state=seed) for _, rows in part.groupby("label")])
    turn = picked.groupby("label").cumcount().to_numpy()  # each row's place in its class; classes in label order
    return picked.iloc[np.argsort(turn, kind="stable")[:images]].sort_index()


def boxed_sample(meta: pd.DataFrame, data: str | Path, images: int, seed: int = 0, what: str = "explaining"):
    """(split, row, image, lesion box) for a class-balanced sample of ``images`` per split, val then test:
    what every study of the explanations scores."""
    boxes = read_boxes(data)
    for name in ("val", "test"):
        part = balanced_sample(meta[meta.split == name], images, seed)
        for row in tqdm(list(part.itertuples()), desc=f"{what} {name}", mininterval=10):
            yield name, row, load_image(row.path), tuple(boxes.loc[row.image_id, ["top", "bottom", "left", "right"]])


def saliency_maps(clf, image: np.ndarray, rng: np.random.Generator) -> tuple[int, dict[str, np.ndarray]]:
    """The top class and each method's map at the image's size."""
    lime = explain_lime(clf, image)
    shape = image.shape[:2]
    return lime.label, {
        "Grad-CAM": grad_cam(clf, image, lime.label),
        "LIME": lime.weights,
        "centre prior": centre_prior(shape),
        "random": rng.random(shape).astype(np.float32),
    }


def score_image(clf, image: np.ndarray, box: tuple, rng: np.random.Generator) -> tuple[int, dict, dict]:
    """The explained class, each method's four metrics on one image, and its deletion and insertion curves."""
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
            "box_area": float(mask.mean()),
        }
        curves[method] = (faithfulness["deletion"], faithfulness["insertion"])
    return label, scores, curves


BASELINE = "centre prior"  # what the model's maps must beat: lesions sit near the centre
BASELINES = (BASELINE, "random")  # the studies that choose pair each candidate with both image-blind maps
ROAD_METRICS = ("road_morf", "road_lerf", "road")  # explain.quality.road: MoRF, LeRF, half their difference
FAITHFULNESS = ("deletion_auc", "insertion_auc", *ROAD_METRICS)


def blind_maps(shape: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The two maps that ignore the model, each candidate's paired baselines: a centred Gaussian and noise."""
    return {BASELINE: centre_prior(shape), "random": rng.random(shape).astype(np.float32)}


def faithfulness(clf, image: np.ndarray, saliency: np.ndarray, label: int) -> dict[str, float]:
    """One map's deletion and insertion areas (blurred away) and ROAD's figures (imputed from the neighbours)."""
    blurred, imputed = deletion_insertion(clf, image, saliency, label), road(clf, image, saliency, label)
    return {"deletion_auc": blurred["deletion_auc"], "insertion_auc": blurred["insertion_auc"],
            **{k: imputed[k] for k in ROAD_METRICS}}


def _mean(j: int, k: int, minus: int | None = None):
    """Statistic for the bootstrap: mean of metric k of method j (minus method ``minus``'s, image by image)."""
    def statistic(_, cube: np.ndarray) -> float:
        values = cube[:, j, k] if minus is None else cube[:, j, k] - cube[:, minus, k]
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else float("nan")
    return statistic


def minus_key(baseline: str) -> str:
    """The name under which a method's paired difference from ``baseline`` is stored."""
    return "minus_" + baseline.replace(" ", "_")


def summarise(scores: pd.DataFrame, methods: tuple[str, ...] = METHODS, compared: tuple[str, ...] = COMPARED,
              metrics: tuple[str, ...] = METRICS, baseline: str | tuple[str, ...] = BASELINE) -> dict:
    """Each method's mean metrics (95% bootstrap interval over lesions); ``compared`` also minus each ``baseline``.

    ``scores``: one row per image and method (the per-image CSV), images in the same order for each
    method. The differences are paired (same images, same resamples): what makes an image hard for
    every map cancels. Several baselines (the centred prior and a random map) each get their own difference.
    """
    baselines = (baseline,) if isinstance(baseline, str) else tuple(baseline)
    cube = np.stack([scores[scores.method == m][list(metrics)].to_numpy(float) for m in methods], axis=1)
    lesions = scores[scores.method == methods[0]].lesion_id.to_numpy()
    statistics = {(m, metric): _mean(j, k) for j, m in enumerate(methods) for k, metric in enumerate(metrics)}
    statistics.update({(m, metric, b): _mean(methods.index(m), k, minus=methods.index(b))
                       for b in baselines for m in compared if m != b for k, metric in enumerate(metrics)})
    bounds = bootstrap_intervals(np.zeros(len(cube)), cube, lesions, statistics)
    summary: dict = {"images": len(cube)}
    if "box_area" in scores:
        summary["box_area"] = float(scores[scores.method == baselines[0]].box_area.mean())
    for m in methods:  # laid out as the card's headline metrics: values, then "ci95" by name
        summary[m] = {metric: statistics[m, metric](None, cube) for metric in metrics}
        summary[m]["ci95"] = {metric: bounds[m, metric] for metric in metrics}
    for b in baselines:
        for m in (m for m in compared if m != b):
            summary[m][minus_key(b)] = {metric: {"difference": statistics[m, metric, b](None, cube),
                                                 "ci95": bounds[m, metric, b]} for metric in metrics}
    return summary


def plot_curves(curves: dict[str, list], path: Path) -> None:
    """Mean deletion and insertion curves of each method (test split)."""
    matplotlib.use("Agg")

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
SCORES_FILE = "explanations.csv"  # one row per image and map: the card's figures can be recomputed from it


def measure_exported(export_dir: str | Path, data: str | Path, images: int = IMAGES_PER_SPLIT, seed: int = 0) -> dict:
    """Score the explanations of an exported model on ``images`` per split; into its card, in place."""
    export_dir = Path(export_dir)
    clf = load_classifier(export_dir)
    card = clf.card().to_json()
    meta = card_split(card, data, seed)
    rng = np.random.default_rng(seed)
    rows, test_curves = [], {m: [] for m in METHODS}
    for name, row, image, box in boxed_sample(meta, data, images, seed):
        label, scores, curves = score_image(clf, image, box, rng)
        for method in METHODS:
            rows.append({"split": name, "image_id": row.image_id, "lesion_id": row.lesion_id, "dx": row.dx,
                         "explained": CLASSES[label], "method": method, **scores[method]})
            if name == "test":
                test_curves[method].append(curves[method])
    frame = pd.DataFrame(rows)
    frame.to_csv(export_dir / SCORES_FILE, index=False, float_format="%.5g")
    results = {name: summarise(frame[frame.split == name]) for name in ("val", "test")}
    plot_curves(test_curves, export_dir / FIGURE)
    section = {
        "sample": f"an equal share of each class, fewer where a class has fewer; seed {seed}",
        "figure": FIGURE,
        "per_image": SCORES_FILE,
        **results,
    }
    record(export_dir, {"explanations": section})
    return section
