"""LIME on the fast runtime: which superpixels push the model towards a class.

The image is explained at the network's input size, so each of LIME's perturbed copies
is fed to the model without another resize; the superpixel map is then scaled back to the
image with nearest-neighbour sampling, so every pixel carries its superpixel's weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from lime.lime_image import LimeImageExplainer
from lime.wrappers.scikit_image import SegmentationAlgorithm

from model.labels import class_index
from model.preprocessing import check_image, resize, scale
from model.runtime import ClassifierLike

# superpixel algorithms and scales compared by `python -m training segmentations` (the card's LIME table);
# parameters as scikit-image names them, images at the network's input size (150x200)
SEGMENTATIONS: dict[str, tuple[str, dict]] = {
    "slic-20": ("slic", {"n_segments": 20, "compactness": 10, "sigma": 1, "start_label": 0}),
    "slic-40": ("slic", {"n_segments": 40, "compactness": 10, "sigma": 1, "start_label": 0}),
    "slic-80": ("slic", {"n_segments": 80, "compactness": 10, "sigma": 1, "start_label": 0}),
    "quickshift": ("quickshift", {"kernel_size": 4, "max_dist": 200, "ratio": 0.2}),  # lime's own default
    "felzenszwalb-100": ("felzenszwalb", {"scale": 100, "sigma": 0.8, "min_size": 100}),
    "felzenszwalb-300": ("felzenszwalb", {"scale": 300, "sigma": 0.8, "min_size": 200}),
}
SEGMENTATION = "slic-80"  # what the page serves: chosen by the rule in docs/explanations.md
BATCH_SIZE = 4  # LiteRT/XNNPACK per image on 2 cores: fastest at 2-8 (Intel), 1-4 (AMD, 192x256 input)


class BatchedLimeImageExplainer(LimeImageExplainer):
    """Stock LIME with the perturbation loop vectorised: same random draws, same answer.

    lime 0.2.0.1 builds each perturbed image in a Python loop (with a tqdm bar on stderr);
    here a whole batch is one masked copy into a reused buffer.
    """

    def data_labels(self, image, fudged_image, segments, classifier_fn, num_samples, batch_size=10,
                    progress_bar=False):
        n_features = np.unique(segments).shape[0]
        data = self.random_state.randint(0, 2, num_samples * n_features).reshape(
            (num_samples, n_features)
        )
        data[0, :] = 1
        on = data.astype(bool)
        buffer = np.empty((batch_size, *image.shape), dtype=image.dtype)  # C-contiguous, reused
        labels = []
        for start in range(0, num_samples, batch_size):
            keep = on[start : start + batch_size][:, segments]  # (b, H, W): superpixel kept?
            batch = buffer[: len(keep)]
            batch[:] = fudged_image
            np.copyto(batch, image, where=keep[..., None])
            labels.append(classifier_fn(batch))
        return data, np.concatenate(labels)


@dataclass
class LimeResult:
    weights: np.ndarray  # float32 HxW: each pixel's superpixel weight (positive supports label)
    segments: np.ndarray  # int HxW superpixel ids
    label: int  # class index explained
    score: float  # R^2 of LIME's local linear model


def explain_lime(
    clf: ClassifierLike,
    image: np.ndarray,
    label: str | int | None = None,
    num_samples: int = 1000,
    random_state: int = 0,
    n_segments: int | None = None,
    segmentation: str = SEGMENTATION,
) -> LimeResult:
    """Run LIME for ``label`` (None: the top class) with a fixed seed: same image, same answer.

    ``segmentation``: one of ``SEGMENTATIONS``; ``n_segments`` overrides a slic segmentation's count.
    """
    if segmentation not in SEGMENTATIONS:
        raise ValueError(f"segmentation must be one of {', '.join(SEGMENTATIONS)}, got {segmentation!r}")
    check_image(image)
    small = resize(image, clf.input_size)
    scaled = scale(small.astype(np.float32))  # perturb network inputs directly: no per-sample conversion
    index = class_index(label, clf.run(scaled[None])[0][0])

    def classifier_fn(batch: np.ndarray) -> np.ndarray:
        return clf.run(batch)[0]

    algorithm, params = SEGMENTATIONS[segmentation]
    if n_segments is not None and algorithm == "slic":
        params = {**params, "n_segments": n_segments}
    segmenter = SegmentationAlgorithm(algorithm, **params, random_seed=random_state)
    # LIME sees the scaled image (its mean-colour fill is the scaled mean: scaling is linear);
    # the superpixels are still found on the 8-bit image
    explanation = BatchedLimeImageExplainer(random_state=random_state).explain_instance(
        scaled,
        classifier_fn,
        labels=(index,),
        top_labels=None,
        num_samples=num_samples,
        batch_size=BATCH_SIZE,
        segmentation_fn=lambda _: segmenter(small),
        random_seed=random_state,
    )
    per_segment = np.zeros(explanation.segments.max() + 1, dtype=np.float32)
    for segment, weight in explanation.local_exp[index]:
        per_segment[segment] = weight
    height, width = image.shape[:2]
    segments = cv2.resize(
        explanation.segments.astype(np.int32), (width, height), interpolation=cv2.INTER_NEAREST
    )
    return LimeResult(per_segment[segments], segments, index, float(explanation.score))


def lime_weights(
    clf: ClassifierLike,
    image: np.ndarray,
    label: str | int | None = None,
    num_samples: int = 1000,
    random_state: int = 0,
) -> np.ndarray:
    """LIME weight of each pixel's superpixel for ``label``, float32 HxW at the image's size."""
    return explain_lime(clf, image, label, num_samples, random_state).weights
