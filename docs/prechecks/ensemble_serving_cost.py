"""Pre-check: what serving the four-run teacher (v13, v36, v37, v48) instead of one network costs.

Run from the repository root: ``PYTHONPATH=. python docs/prechecks/ensemble_serving_cost.py`` (under
a minute on 2 cores). Each shipped example image is classified as the page classifies it (decoded
array in, probabilities out) by v13 alone and by the mean of the four members' answers, the image
prepared once and run through each member's LiteRT runtime; each figure is the median of 50 timed
calls after 5 warm-up calls.
"""
import glob
import statistics
import time

import numpy as np

from model import load_image
from model.preprocessing import prepare_batch
from model.runtime import load_classifier

MEMBERS = ("replicates/v13", "replicates/v36", "replicates/v37", "replicates/v48")


def median_ms(call, repeats: int = 50) -> float:
    for _ in range(5):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


members = [load_classifier(path) for path in MEMBERS]


def teacher(image: list) -> np.ndarray:
    """The four members' mean answer, the image prepared once (the members share an input size)."""
    batch = prepare_batch(image, members[0].input_size)
    return np.mean([member.run(batch)[0] for member in members], axis=0)


for path in sorted(glob.glob("examples/*.jpg")):
    image = [load_image(path)]
    one = median_ms(lambda image=image: members[0].predict(image))
    four = median_ms(lambda image=image: teacher(image))
    print(f"{path}: v13 {one:.2f} ms, four-run teacher {four:.2f} ms ({four / one:.1f}x)")
