"""Pre-check: v13's frozen features, a head refitted on HAM10000 with and without BCN20000, scored on half A.

Run from the repository root: ``PYTHONPATH=. python docs/prechecks/refit_head_with_bcn.py``. The
features (about 27,000 images through the served runtime, 6 minutes on 2 cores) are cached in
``runs/refit_head_features.npz``. Each training pool's ``C`` is chosen on HAM10000 validation; the
pools are then compared on half A of the ISIC 2018 test set, paired with v13's own head.
"""

import cv2
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from model import load_classifier, load_image
from training.data import read_bcn_train, read_split
from training.external import STATISTICS, validation_sets
from training.sampling import cell_weights
from training.studies.intervals import paired_differences

HAM, BCN, CACHE = "../shared/data/ham10000_400x300", "../shared/data/bcn20000_84", "runs/refit_head_features.npz"
GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def down_up(image: np.ndarray, long_side: int = 84) -> np.ndarray:
    """As BCN20000's copy looks: area down to 84 px on the long side, bilinear back up."""
    h, w = image.shape[:2]
    f = long_side / max(h, w)
    small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def served(clf, paths, transform=lambda x: x) -> tuple[np.ndarray, np.ndarray]:
    """Pooled ``out_relu`` features and probabilities, as served."""
    outs = [clf.predict_with_features([transform(load_image(p)) for p in paths[i:i + 64]])
            for i in range(0, len(paths), 64)]
    return np.concatenate([o.features.mean(axis=(1, 2)) for o in outs]), np.concatenate([o.probs for o in outs])


def balanced_weights(labels: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Per-sample weights with the odds of ``--sampling balanced``: classes uniform, sources uniform within each."""
    cells = cell_weights(labels, sources)
    counts = pd.Series(list(zip(labels, sources, strict=True))).value_counts()
    return np.array([cells[(int(c), s)] / counts[(c, s)] for c, s in zip(labels, sources, strict=True)]) * len(labels)


def main() -> None:
    train = read_split(HAM, 0).query("split == 'train'")
    bcn = read_bcn_train(BCN)
    sets = {s.name: s for s in validation_sets(HAM)}
    try:
        f = dict(np.load(CACHE))
    except FileNotFoundError:
        clf = load_classifier()
        f = {"xt": served(clf, list(train.path))[0], "xd": served(clf, list(train.path), down_up)[0],
             "xb": served(clf, list(bcn.path))[0]}
        for key, name in (("v", "ham_val"), ("a", "isic2018_test_a")):
            f[f"x{key}"], f[f"p{key}"] = served(clf, list(sets[name].paths))
        np.savez(CACHE, **f)
    y_ham, y_bcn = train.label.to_numpy(), bcn.label.to_numpy()
    pools = {
        "HAM10000": (f["xt"], y_ham, ["ham"] * len(y_ham)),
        "HAM10000 + BCN20000": (np.concatenate([f["xt"], f["xb"]]), np.concatenate([y_ham, y_bcn]),
                                ["ham"] * len(y_ham) + ["bcn"] * len(y_bcn)),
        "HAM10000 + its 84-px copies + BCN20000": (
            np.concatenate([f["xt"], f["xd"], f["xb"]]), np.concatenate([y_ham, y_ham, y_bcn]),
            ["ham"] * len(y_ham) + ["ham84"] * len(y_ham) + ["bcn"] * len(y_bcn)),
    }
    stat = {name: STATISTICS[name] for name in ("balanced_accuracy", "melanoma_recall", "macro_auc")}
    val, a = sets["ham_val"], sets["isic2018_test_a"]
    print(f"v13's own head: HAM10000 validation {stat['balanced_accuracy'](val.labels, f['pv']):.3f}; half A "
          + ", ".join(f"{n} {s(a.labels, f['pa']):.3f}" for n, s in stat.items()))
    for pool, (x, y, sources) in pools.items():
        scaler = StandardScaler().fit(x)
        weights = balanced_weights(y, np.array(sources))
        heads = [LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(x), y, sample_weight=weights)
                 for c in GRID]
        scores = [stat["balanced_accuracy"](val.labels, h.predict_proba(scaler.transform(f["xv"]))) for h in heads]
        best = int(np.argmax(scores))
        refit = heads[best].predict_proba(scaler.transform(f["xa"]))
        paired = paired_differences(a.labels, f["pa"], refit, a.groups)
        figures = [f"{n} {s(a.labels, refit):.3f} ({paired[n]['difference']:+.3f}, {paired[n]['ci95'][0]:+.3f} to "
                   f"{paired[n]['ci95'][1]:+.3f})" for n, s in stat.items()]
        print(f"{pool}: C {GRID[best]}, HAM10000 validation {scores[best]:.3f}; half A (minus v13's head): "
              + "; ".join(figures))


if __name__ == "__main__":
    main()
