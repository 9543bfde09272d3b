"""The fast figures the bootstraps use (ROC AUC, balanced accuracy) give scikit-learn's values,
ties and absent classes included."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from model.metrics import roc_auc


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_equals_scikit_learn_with_ties(seed):
    rng = np.random.default_rng(seed)
    positive = rng.random(300) < 0.2
    scores = np.round(rng.random(300) + 0.3 * positive, 1)  # many ties
    assert roc_auc(positive, scores) == pytest.approx(roc_auc_score(positive, scores), abs=1e-12)


def test_roc_auc_is_nan_without_one_of_the_two_sides():
    assert np.isnan(roc_auc(np.ones(5, bool), np.arange(5.0)))
    assert np.isnan(roc_auc(np.zeros(5, bool), np.arange(5.0)))
    assert roc_auc(np.array([False, True]), np.array([0.1, 0.9])) == 1.0


def test_the_bootstrap_s_balanced_accuracy_is_scikit_learn_s_on_resamples_missing_classes():
    from sklearn.metrics import balanced_accuracy_score

    from model.metrics import HEADLINE

    rng = np.random.default_rng(0)
    for n in (1, 5, 40):
        labels = rng.choice([0, 2, 5, 6], n)  # classes 1, 3 and 4 never present
        probs = rng.dirichlet(np.ones(7), n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = balanced_accuracy_score(labels, probs.argmax(1))
        assert HEADLINE["balanced_accuracy"](labels, probs) == pytest.approx(expected, abs=1e-12)
