"""Pre-check: is the HAM10000 figure a run reports (200x150 copy) above the one ``judge`` reports (400x300
files, resized as served) because of the rendering, or because the best epoch is picked on that copy?

Run from the repository root: ``PYTHONPATH=. python docs/prechecks/validation_copy_vs_served.py`` (about
a minute on 2 cores). Each kept run of v13's recipe scores the validation split (where its best epoch
was picked) and the test split (never used for a choice) both ways, paired, with 95% lesion-bootstrap
intervals of the difference. A rendering skew would lower both splits alike; a pick lowers validation only.
"""

import numpy as np

from model import load_classifier, load_image
from model.metrics import bootstrap_intervals
from model.preprocessing import resize
from training.data import read_split
from training.external import STATISTICS
from training.studies.intervals import difference

RUNS = ("model/shipped", "replicates/v36", "replicates/v37")
bacc = STATISTICS["balanced_accuracy"]
split = read_split("../shared/data/ham10000", 0)
parts = {}
for part in ("val", "test"):
    rows = split[split.split == part]
    parts[part] = (rows, [load_image(f"../shared/data/ham10000/images/{i}.jpg") for i in rows.image_id],
                   [resize(load_image(f"../shared/data/ham10000_400x300/images/{i}.jpg")) for i in rows.image_id])
for run in RUNS:
    clf = load_classifier(run)
    for part, (rows, copy_images, served_images) in parts.items():
        copy, served = clf.predict(copy_images), clf.predict(served_images)
        y = rows.label.to_numpy()
        low, high = bootstrap_intervals(y, np.stack([copy, served], 1), rows.lesion_id.to_numpy(),
                                        {0: difference(bacc)})[0]
        print(f"{run:16s} {part:4s} 200x150 copy {bacc(y, copy):.3f}  400x300 as served {bacc(y, served):.3f}"
              f"  served minus copy {bacc(y, served) - bacc(y, copy):+.3f} ({low:+.3f} to {high:+.3f})")
