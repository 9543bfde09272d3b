"""Pre-check: what serving the four-run teacher (v13, v36, v37, v48) instead of one network costs.

Run from the repository root: ``PYTHONPATH=. python docs/prechecks/ensemble_serving_cost.py`` (under
a minute on 2 cores). Each shipped example image is classified as the page classifies it (decoded
array in, probabilities out) by v13 alone and by the teacher as training uses it (``distill.answerer``:
the image prepared once, the members' LiteRT answers averaged); timed as ``python -m benchmarks``
times (median and IQR of 50 calls after 5 warm-up calls).
"""
import glob

import numpy as np

from benchmarks.__main__ import fmt, timed
from model import load_classifier, load_image
from model.preprocessing import prepare_batch
from training.distill import answerer

TEACHER = "replicates/v13+replicates/v36+replicates/v37+replicates/v48"

v13 = load_classifier("replicates/v13")
teacher = answerer(TEACHER)
for path in sorted(glob.glob("examples/*.jpg")):
    image = [load_image(path)]
    one = timed(lambda image=image: v13.predict(image), 50, warmup=5)
    four = timed(lambda image=image: teacher(prepare_batch(image, v13.input_size)), 50, warmup=5)
    print(f"{path}: v13 {fmt(one)}, four-run teacher {fmt(four)} ({np.median(four) / np.median(one):.1f}x)")
