"""scikit-learn's own estimator checks, each as a test of its own (none skipped)."""
from sklearn.utils.estimator_checks import parametrize_with_checks

import bprop


@parametrize_with_checks([bprop.MLPClassifier()])
def test_sklearn_check(estimator, check):
    check(estimator)
