"""Bad input gets a clear error that names the problem."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor

X = np.random.RandomState(0).randn(20, 3)
Y = np.array([0, 1] * 10)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=2.5), "batch_size"),
        (dict(clip_norm=0.0), "clip_norm"),
        (dict(clip_value=-1.0), "clip_value"),
        (dict(loss="nope"), "loss"),
        (dict(penalty="l3"), "penalty"),
        (dict(learning_rate="fast"), "learning_rate"),
        (dict(eta0=0.0), "eta0"),
        (dict(max_iter=0), "max_iter"),
        (dict(alpha=0.0), "alpha must be > 0"),
        (dict(penalty="elasticnet", l1_ratio=None), "l1_ratio"),
    ],
)
@pytest.mark.parametrize("Est", [MinibatchSGDClassifier, MinibatchSGDRegressor])
def test_invalid_parameters_are_named(Est, params, match):
    if Est is MinibatchSGDRegressor and "alpha" in params:
        params = dict(params, learning_rate="optimal")
    with pytest.raises(ValueError, match=match):
        Est(**params).fit(X, Y)


@pytest.mark.parametrize("Est", [MinibatchSGDClassifier, MinibatchSGDRegressor])
def test_bad_X_is_rejected(Est):
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Est().fit(bad, Y)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        Est().fit(bad, Y)
    with pytest.raises(ValueError, match="could not convert|dtype"):
        Est().fit(np.array([["a", "b"]] * 20), Y)


def test_wrong_feature_count_names_both_counts():
    clf = MinibatchSGDClassifier().fit(X, Y)
    for method in (clf.predict, clf.decision_function):
        with pytest.raises(ValueError, match="4 features.*expecting 3"):
            method(np.ones((2, 4)))
    with pytest.raises(ValueError, match="4 features.*expecting 3"):
        clf.partial_fit(np.ones((2, 4)), [0, 1])


def test_partial_fit_label_checks():
    clf = MinibatchSGDClassifier()
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, Y)
    clf.partial_fit(X, Y, classes=[0, 1])
    before = clf.coef_.copy()
    with pytest.raises(ValueError, match=r"labels not in `classes`: \[7\]"):
        clf.partial_fit(X[:2], [0, 7])
    np.testing.assert_array_equal(clf.coef_, before)


def test_single_class_fit_is_refused():
    with pytest.raises(ValueError, match="number of classes has to be greater than one"):
        MinibatchSGDClassifier().fit(X, np.zeros(20))


def test_sparse_int64_and_predict_before_fit():
    with pytest.raises(NotFittedError):
        MinibatchSGDClassifier().predict(X)
    Xs = sp.csr_matrix(X)
    Xs.indices = Xs.indices.astype(np.int64)
    Xs.indptr = Xs.indptr.astype(np.int64)
    MinibatchSGDClassifier().fit(Xs, Y).predict(Xs)
