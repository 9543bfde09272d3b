"""Pre-check: would a quantized LiteRT copy of the shipped network bring LIME at 1000 samples under 6 s?

Run from the repository root: ``PYTHONPATH=. python docs/prechecks/quantized_litert.py``.
LIME's cost is 1000 forward passes, so the figure that decides is the runtime's throughput.
The shipped network is converted as ``training/export.py`` converts it, then with dynamic-range and with
full-integer quantization (calibrated on 100 HAM10000 validation images; agreement is measured on the other
validation images). Each copy is timed in turns on the same minutes, and its LIME is compared with the float
copy's LIME on the shipped examples.
"""
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

import explain
from benchmarks.__main__ import top_k_overlap
from model import load_image
from model.preprocessing import prepare_batch
from model.runtime import Classifier
from training.external import validation_sets
from training.network import serving_model

OUT = Path("runs/quantized_litert")
OUT.mkdir(parents=True, exist_ok=True)
shipped = serving_model(keras.saving.load_model("model/shipped/skin_mobilenetv2.keras", compile=False))
size = tuple(shipped.input_shape[1:3])
ham_val = next(s for s in validation_sets("../shared/data/ham10000") if s.name == "ham_val")
scaled = np.concatenate([prepare_batch([load_image(p) for p in ham_val.paths[i:i + 64]], size)
                         for i in range(0, len(ham_val.paths), 64)])
calibration, held = scaled[:100], scaled[100:]

spec = tf.TensorSpec((None, *shipped.input_shape[1:]), tf.float32)
frozen = convert_variables_to_constants_v2(
    tf.function(lambda images: shipped(images, training=False)).get_concrete_function(spec))
paths = {}
for kind in ("float32", "dynamic-range int8", "full int8"):
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if kind != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "full int8":
        converter.representative_dataset = lambda: ([calibration[i:i + 1]] for i in range(len(calibration)))
    paths[kind] = OUT / f"{kind.replace(' ', '_')}.tflite"
    paths[kind].write_bytes(converter.convert())

runtimes = {kind: Classifier(path, num_threads=2) for kind, path in paths.items()}
probs = {kind: np.concatenate([r.run(held[i:i + 32])[0] for i in range(0, len(held), 32)])
         for kind, r in runtimes.items()}
speed = {kind: [] for kind in runtimes}
for _ in range(3):  # in turns, so each copy sees the same load
    for kind, runtime in runtimes.items():
        start = time.perf_counter()
        runtime.run(held[:128])
        speed[kind].append(128 / (time.perf_counter() - start))

examples = [load_image(p) for p in sorted(Path("examples").glob("*.jpg"))]
lime_seconds, top5 = {kind: [] for kind in runtimes}, {kind: [] for kind in runtimes}
for image in examples:
    label = int(runtimes["float32"].predict([image])[0].argmax())  # the float copy's class, explained by each
    reference = None
    for kind, runtime in runtimes.items():
        start = time.perf_counter()
        result = explain.explain_lime(runtime, image, label=label, num_samples=1000, random_state=0)
        lime_seconds[kind].append(time.perf_counter() - start)
        weights = {int(s): float(result.weights[result.segments == s].mean()) for s in np.unique(result.segments)}
        reference = reference or weights
        top5[kind].append(top_k_overlap(weights, reference))

print(f"{'copy':<20} {'bytes':>9} {'img/s':>6} {'top-1 agrees':>12} {'max |dp|':>9} {'LIME s':>7} "
      f"{'LIME top-5 shared':>17}")
for kind in runtimes:
    agree = (probs[kind].argmax(1) == probs["float32"].argmax(1)).mean()
    print(f"{kind:<20} {paths[kind].stat().st_size:>9} {np.median(speed[kind]):>6.0f} {agree:>12.3f} "
          f"{np.abs(probs[kind] - probs['float32']).max():>9.3f} {np.median(lime_seconds[kind]):>7.1f} "
          f"{np.mean(top5[kind]):>17.0%}")
