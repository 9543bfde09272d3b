"""The fast ROC AUC the bootstraps use gives scikit-learn's value, ties included."""

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
