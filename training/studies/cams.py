"""Which Grad-CAM the page serves, measured: the candidates of ``explain.gradcam.METHODS`` side by side.

Each candidate's map of the top class on a class-balanced sample of each split, scored as
``training.explanations`` scores the served maps (pointing game and mass in the lesion box,
deletion and insertion) and by ROAD (removed pixels imputed from their neighbours), paired against
the centred prior and a random map on the same images, with its cost:
milliseconds for classify + map on this machine, the page's path (``explain.gradcam.cam_map``
after one runtime pass). Choose on validation; the test split is reported.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from explain.gradcam import METHODS, SERVED, cam_map
from explain.quality import box_mask, energy_share, pointing_hit
from model.card import read_json
from model.labels import CLASSES
from model.preprocessing import prepare_batch, scale
from model.runtime import CAM_FILE, KERAS_FILE, load_classifier

from ..cam_export import export_cam_model
from ..card import record
from ..data import card_split, load_arrays
from ..network import load_network
from .explanations import BASELINES, METRICS, ROAD_METRICS, blind_maps, boxed_sample, faithfulness, summarise

IMAGES_PER_SPLIT = 70  # 10 of each class where it has them: about 15 s an image on 2 cores, mostly ROAD


def score_image(clf, image: np.ndarray, box: tuple, rng: np.random.Generator) -> list[dict]:
    """Every candidate's metrics and cost on one image, and the centred prior's and a random map's."""
    mask = box_mask(image.shape[:2], box, image.shape[:2])
    rows = []
    maps, cost = {}, {}
    for method in (m for m, cam in METHODS.items() if clf.has_gradients or not cam.needs_gradients):
        start = time.perf_counter()
        inputs = prepare_batch([image], clf.input_size)
        probs, features = clf.run(inputs)
        label = int(probs[0].argmax())
        maps[method] = cam_map(clf, inputs[0], features[0], label, image.shape[:2], method)
        cost[method] = (time.perf_counter() - start) * 1000
    for name, blind in blind_maps(image.shape[:2], rng).items():
        maps[name], cost[name] = blind, float("nan")
    for method, saliency in maps.items():
        rows.append({"method": method, "explained": CLASSES[label], "ms": cost[method],
                     "pointing_hit": float(pointing_hit(saliency, mask)), "energy_in_box": energy_share(saliency, mask),
                     **faithfulness(clf, image, saliency, label), "box_area": float(mask.mean())})
    return rows


def measure_exported(export_dir: str | Path, data: str | Path, images: int = IMAGES_PER_SPLIT, seed: int = 0) -> dict:
    """Score every CAM candidate of an exported model on ``images`` per split; into its card (``cam_methods``)."""
    export_dir = Path(export_dir)
    meta = card_split(read_json(export_dir), data, seed)
    ensure_gradient_model(export_dir, meta)
    clf = load_classifier(export_dir)
    rng = np.random.default_rng(seed)
    rows = [{"split": name, "image_id": row.image_id, "lesion_id": row.lesion_id, **scored}
            for name, row, image, box in boxed_sample(meta, data, images, seed, "CAMs on")
            for scored in score_image(clf, image, box, rng)]
    frame = pd.DataFrame(rows)
    frame.to_csv(export_dir / "cam_methods.csv", index=False, float_format="%.5g")
    methods = (*frame.method.unique(),)
    compared = tuple(m for m in methods if m not in BASELINES)
    section = {"served": SERVED, "passes": {m: METHODS[m].passes for m in compared}, "per_image": "cam_methods.csv",
               "cell": f"{clf.input_size[0]}x{clf.input_size[1]} input, out_relu {_grid(clf)}"}
    for name in ("val", "test"):
        part = frame[frame.split == name]
        section[name] = summarise(part, methods, compared, (*METRICS, *ROAD_METRICS), BASELINES)
        section[name]["ms"] = {m: float(part[part.method == m].ms.median()) for m in compared}
    record(export_dir, {"cam_methods": section})
    return section


def ensure_gradient_model(export_dir: Path, meta: pd.DataFrame) -> None:
    """Write the export's gradient model (training/cam_export.py) from its .keras file, if it has none yet."""
    if (export_dir / CAM_FILE).is_file():
        return
    network = load_network(export_dir / KERAS_FILE)
    size = tuple(network.input.shape[1:3])
    check = scale(load_arrays(list(meta[meta.split == "val"].path[:4]), size).astype(np.float32))
    cam_model = export_cam_model(network, export_dir, check)
    files = {**read_json(export_dir).get("files", {}), CAM_FILE: {k: cam_model[k] for k in ("sha256", "bytes")}}
    record(export_dir, {"cam_model": cam_model, "files": files})  # verify() reads the file's SHA-256 in files


def _grid(clf) -> str:
    probs, features = clf.run(np.zeros((1, *clf.input_size, 3), np.float32))
    return f"{features.shape[1]}x{features.shape[2]} cells"
