"""Pre-check: v13's weights served at larger test sizes (FixRes's train-test resolution discrepancy).

Run from the repository root: ``PYTHONPATH=. python docs/prechecks/larger_test_size.py`` (about 13
minutes on 2 cores). Images are read from the 400x300 files and resized by the serving code; each
size is paired with 150x200, as served, on HAM10000 validation and half A of the ISIC 2018 test set.
"""
import keras
import numpy as np

from model import load_image
from model.preprocessing import prepare_batch
from training.external import STATISTICS, validation_sets
from training.network import build_network
from training.studies.intervals import paired_differences

shipped = keras.saving.load_model("model/shipped/skin_mobilenetv2.keras", compile=False)
sets = {s.name: s for s in validation_sets("../shared/data/ham10000_400x300")}
images = {n: [load_image(p) for p in sets[n].paths] for n in ("ham_val", "isic2018_test_a")}
probs = {}
for size in ((150, 200), (165, 220), (180, 240), (192, 256), (210, 280)):
    network = build_network(size, weights=None)
    network.set_weights(shipped.get_weights())
    for n, ims in images.items():
        probs[(size, n)] = np.concatenate([network.predict(prepare_batch(ims[i:i + 64], size), verbose=0)
                                           for i in range(0, len(ims), 64)])
    print(size, {n: round(STATISTICS["balanced_accuracy"](sets[n].labels, probs[(size, n)]), 4) for n in images},
          flush=True)
np.savez("runs/larger_test_size.npz", **{f"{s[0]}x{s[1]}_{n}": p for (s, n), p in probs.items()})
for size in ((165, 220), (180, 240), (192, 256), (210, 280)):
    for n in images:
        s = sets[n]
        paired = paired_differences(s.labels, probs[((150, 200), n)], probs[(size, n)], s.groups)
        for stat in ("balanced_accuracy", "melanoma_recall", "macro_auc"):
            d, (low, high) = paired[stat]["difference"], paired[stat]["ci95"]
            print(f"{size[0]}x{size[1]} {n} {stat}: {STATISTICS[stat](s.labels, probs[(size, n)]):.3f} "
                  f"({d:+.3f}, {low:+.3f} to {high:+.3f})", flush=True)
