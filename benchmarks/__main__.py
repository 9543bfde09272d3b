"""python -m benchmarks [--quick]: speed of every user-facing path, each beside a baseline.

Each figure is the median (and interquartile range) of repeated runs after warm-up, on the
shipped model and the shipped example images. Baselines run in the same process: Keras
``Model.predict`` and a ``tf.function`` on the same weights, textbook GradientTape Grad-CAM,
and stock ``lime`` (its per-sample loop) on the same runtime.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def timed(fn, repeat: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def fmt(times: list[float], unit: str = "ms") -> str:
    scale = 1000 if unit == "ms" else 1
    q = np.percentile(times, [25, 50, 75]) * scale
    return f"{q[1]:.1f} {unit} (IQR {q[0]:.1f}-{q[2]:.1f}, n={len(times)})"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def top_k_overlap(a: dict, b: dict, k: int = 5) -> float:
    """Share of the k most supporting superpixels that two LIME runs agree on."""
    top = [set(sorted(d, key=d.get, reverse=True)[:k]) for d in (a, b)]
    return len(top[0] & top[1]) / k


def ray_engine(folder: Path, n_files: int) -> tuple[str, str, str]:
    """The CLI's Ray engine on the same folder: end to end, and its fixed cost (a run on one image)."""
    import importlib.util

    name = f"CLI predict --engine ray, {n_files} JPEGs"
    if importlib.util.find_spec("ray") is None:
        return name, "not measured", "Ray is not installed (pip install -r requirements-scale.txt)"

    def run(paths: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "model", "predict", *paths, "--out", str(folder / "ray.csv"),
                        "--engine", "ray"], cwd=ROOT, check=True, capture_output=True)
        return time.perf_counter() - start

    total = run([str(folder)])
    fixed = run([str(next(folder.glob("*.jpg")))])
    return (name, f"{n_files / total:.0f} img/s end to end",
            f"{n_files / max(total - fixed, 1e-9):.0f} img/s after start-up ({fixed:.1f} s to start a local Ray, "
            f"its actors and their models, and stop it: a run on one image); up to {os.cpu_count()} actors of "
            "1 LiteRT thread")


def served_paths(examples: list[Path], reps: int, quick: bool) -> list[tuple[str, str, str]]:
    """The shipped model as users reach it: the app's first answer, the CLI, the server."""
    rows: list[tuple[str, str, str]] = []
    # the page's first answer, server side: decode the upload, probabilities, Grad-CAM overlay, PNG
    import io

    from app import page

    def overview_png():
        page.overview(str(examples[0])).gradcam.save(io.BytesIO(), format="png")

    page_first = timed(overview_png, reps)
    rows.append(("page's first answer on upload (server side)", fmt(page_first),
                 "decode + classify + Grad-CAM overlay + summary + PNG encoding; LIME follows"))

    # CLI over a folder of JPEGs, end to end (process start and decode included)
    n_files = 300 if quick else 2000
    data_dir = ROOT.parent / "shared/data/ham10000/images"
    source = sorted(data_dir.glob("*.jpg"))[:n_files] if data_dir.is_dir() else []
    with tempfile.TemporaryDirectory() as tmp:
        if not source:  # no dataset beside the repo: repeat the shipped examples
            source = [examples[i % len(examples)] for i in range(n_files)]
        for i, path in enumerate(source):
            shutil.copy(path, Path(tmp) / f"{i:05d}.jpg")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "model", "predict", tmp, "--out", str(Path(tmp) / "p.csv")],
                       cwd=ROOT, check=True, capture_output=True)
        cli_total = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import model; model.load_classifier()"], cwd=ROOT, check=True,
                       capture_output=True)
        cli_start = time.perf_counter() - start
        ray_row = ray_engine(Path(tmp), len(source))
    rows.append((f"CLI predict, {len(source)} JPEGs", f"{len(source) / cli_total:.0f} img/s end to end",
                 f"{len(source) / max(cli_total - cli_start, 1e-9):.0f} img/s after start-up "
                 f"({cli_start:.1f} s to import and load the model)"))
    rows.append(ray_row)

    # the app: start-up to first answer, /classify round trip
    from gradio_client import Client, handle_file

    from app.launch import running_demo

    start = time.perf_counter()
    with running_demo() as demo:
        client = Client(demo.url, verbose=False)
        client.predict(handle_file(str(examples[0])), api_name="/classify")
        first_answer = time.perf_counter() - start
        trips = timed(lambda: client.predict(handle_file(str(examples[0])), api_name="/classify"),
                      max(10, reps // 2))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, capture_output=True)
    tf_import = time.perf_counter() - start
    rows.append(("python demo.py to first /classify answer", f"{first_answer:.1f} s",
                 f"importing TensorFlow alone takes {tf_import:.1f} s (the app does not)"))
    rows.append(("/classify round trip (gradio_client)", fmt(trips), "in-process classify above"))

    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and images")
    parser.add_argument("--model", default=None,
                        help="an exported model folder (runs/NAME/export) instead of the shipped model; "
                        "times the in-process paths only (classify, Grad-CAM, LIME, throughput)")
    args = parser.parse_args()
    reps = 10 if args.quick else 50
    lime_reps = 2 if args.quick else 5

    import keras
    import tensorflow as tf
    from lime.lime_image import LimeImageExplainer
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    from explain import explain_lime, grad_cam
    from explain.gradcam import served_method
    from explain.lime import BATCH_SIZE, SEGMENTATION, SEGMENTATIONS
    from model import load_classifier, load_image
    from model.preprocessing import prepare_batch, resize, scale
    from model.runtime import KERAS_FILE, SHIPPED_DIR
    from training.network import FEATURE_LAYER, LOGITS_LAYER, load_network

    rows: list[tuple[str, str, str]] = []
    clf = load_classifier(args.model)
    network = load_network(Path(args.model or SHIPPED_DIR) / KERAS_FILE)
    examples = sorted((ROOT / "examples").glob("*.jpg"))
    images = [load_image(p) for p in examples]
    image = images[0]
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; LiteRT threads {clf.num_threads}; "
          f"TensorFlow {tf.__version__} intra-op threads {tf.config.threading.get_intra_op_parallelism_threads()}"
          f" (0 = all); input {clf.input_size[0]}x{clf.input_size[1]}", flush=True)

    # classify one image, preprocessing included
    fast = timed(lambda: clf.predict([image]), reps)
    keras_predict = timed(lambda: network.predict(prepare_batch([image], clf.input_size), verbose=0), reps)
    compiled = tf.function(lambda x: network(x, training=False))
    tf_fn = timed(lambda: compiled(prepare_batch([image], clf.input_size)).numpy(), reps)
    rows.append(("classify 1 image (LiteRT)", fmt(fast),
                 f"Keras predict {fmt(keras_predict)}; tf.function {fmt(tf_fn)}; "
                 f"speed-up vs predict {np.median(keras_predict) / np.median(fast):.0f}x"))

    # classify + Grad-CAM
    grad_model = keras.Model(network.input, [network.get_layer(FEATURE_LAYER).output,
                                              network.get_layer(LOGITS_LAYER).output])

    def tape_cam():
        batch = prepare_batch([image], clf.input_size)
        with tf.GradientTape() as tape:
            features, logits = grad_model(batch, training=False)
            score = tf.reduce_max(logits, axis=1)
        grads = tape.gradient(score, features)
        cam = tf.nn.relu(tf.reduce_sum(features[0] * tf.reduce_mean(grads, axis=(0, 1, 2)), -1)).numpy()
        return cam

    cam_fast = timed(lambda: grad_cam(clf, image, method="gradcam"), reps)  # one call: probabilities, features
    cam_tape = timed(tape_cam, max(5, reps // 5))
    rows.append(("classify + Grad-CAM (closed form)", fmt(cam_fast), f"eager GradientTape {fmt(cam_tape)}"))
    served = served_method(clf)
    if served != "gradcam":  # the page's map, from the export's gradient model
        cam_served = timed(lambda: grad_cam(clf, image), reps)
        rows.append((f"classify + Grad-CAM (served: {served})", fmt(cam_served),
                     f"closed form {fmt(cam_fast)}; goal <= 30 ms"))

    # similar confirmed cases: classify + the gallery's nearest six (the page's path reuses the classify call)
    from explain.similar import gallery_of, similar_cases

    if (Path(clf.path).parent / "gallery.npz").is_file():
        from sklearn.neighbors import NearestNeighbors

        gallery = gallery_of(clf)
        similar = timed(lambda: similar_cases(clf, image, k=6), reps)
        index = NearestNeighbors(n_neighbors=6, metric="cosine", algorithm="brute").fit(gallery.embeddings)
        pooled = clf.predict_with_features([image])[1].mean(axis=(1, 2))
        brute = timed(lambda: index.kneighbors(gallery.embed(pooled)), reps)
        rows.append((f"classify + 6 similar cases ({len(gallery.image_ids):,} images)", fmt(similar),
                     f"scikit-learn brute-force cosine search alone {fmt(brute)}; goal <= 20 ms"))

    # LIME at 1000 samples, against stock lime on the same runtime and segmentation
    def stock_lime(img: np.ndarray, label: int) -> dict:
        algorithm, params = SEGMENTATIONS[SEGMENTATION]  # the served segmentation, as explain_lime uses it
        segmenter = SegmentationAlgorithm(algorithm, **params, random_seed=0)
        with open(os.devnull, "w") as devnull:  # stock lime draws a tqdm bar on stderr
            old, sys.stderr = sys.stderr, devnull
            try:
                exp = LimeImageExplainer(random_state=0).explain_instance(
                    resize(img, clf.input_size), lambda b: clf.run(scale(np.asarray(b, np.float32)))[0],
                    labels=(label,), top_labels=None, num_samples=1000, batch_size=BATCH_SIZE,
                    segmentation_fn=segmenter, random_seed=0)
            finally:
                sys.stderr = old
        return dict(exp.local_exp[label])

    label = int(clf.predict([image])[0].argmax())
    lime_stock = timed(lambda: stock_lime(image, label), lime_reps, warmup=1)
    lime_ours = timed(lambda: explain_lime(clf, image, label=label, num_samples=1000, random_state=0), lime_reps,
                      warmup=1)
    overlaps = []
    for img in images:
        lab = int(clf.predict([img])[0].argmax())
        res = explain_lime(clf, img, label=lab, num_samples=1000, random_state=0)
        ours = {int(s): float(res.weights[res.segments == s].mean()) for s in np.unique(res.segments)}
        overlaps.append(top_k_overlap(ours, stock_lime(img, lab)))
    rows.append(("LIME, 1000 samples", fmt(lime_ours, "s"),
                 f"stock lime {fmt(lime_stock, 's')}; top-5 superpixels shared with stock: "
                 f"mean {np.mean(overlaps):.0%}, min {min(overlaps):.0%} over {len(overlaps)} example images"))

    # batch throughput
    batch = prepare_batch(images * 5, clf.input_size)[:32]
    thr = timed(lambda: clf.run(batch), max(5, reps // 5))
    thr_keras = timed(lambda: network.predict(batch, verbose=0), 3, warmup=1)
    rows.append(("throughput, batch of 32", f"{32 / np.median(thr):.0f} img/s",
                 f"Keras predict {32 / np.median(thr_keras):.0f} img/s"))

    if args.model is None:  # these run the shipped model in the app, the CLI and the server
        rows += served_paths(examples, reps, args.quick)

    width = max(len(r[0]) for r in rows)
    print(f"\n| {'figure':<{width}} | median | baseline (same run) |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for name, value, baseline in rows:
        print(f"| {name:<{width}} | {value} | {baseline} |")


if __name__ == "__main__":
    main()
