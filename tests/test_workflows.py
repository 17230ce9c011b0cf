"""Pipelines, grid search and streaming: how people will use the estimators."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skgd import MinibatchSGDClassifier


def test_pipeline_in_grid_search_over_eta0_and_batch_size():
    X, y = load_breast_cancer(return_X_y=True)
    pipe = Pipeline([
        ("scale", StandardScaler()),
        ("clf", MinibatchSGDClassifier(learning_rate="constant", loss="log_loss",
                                       max_iter=20, tol=None, random_state=0)),
    ])
    grid = {"clf__eta0": [1e-6, 1e-3, 1e-1], "clf__batch_size": [1, 16, 128]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert len(search.cv_results_["params"]) == 9
    assert search.best_score_ > 0.95
    # a rate of 1e-6 barely moves the weights: the search must see that
    assert search.best_params_["clf__eta0"] != 1e-6
    scores = search.cv_results_["mean_test_score"]
    assert scores.max() - scores.min() > 0.02


def test_partial_fit_streams_adult_in_one_pass(adult):
    X, y, Xt, yt = adult
    clf = MinibatchSGDClassifier(loss="log_loss", random_state=0)
    classes = np.unique(y)
    for start in range(0, X.shape[0], 1000):
        clf.partial_fit(X[start:start + 1000], y[start:start + 1000], classes=classes)
    assert clf.t_ == 1 + X.shape[0]
    assert clf.score(Xt, yt) >= 0.80
    assert len(clf.loss_curve_) == -(-X.shape[0] // 1000)


@pytest.mark.parametrize("loss", ["log_loss", "modified_huber"])
def test_predict_proba_rows_sum_to_one_and_match_predict(loss):
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = MinibatchSGDClassifier(loss=loss, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (X.shape[0], 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    agree = np.mean(clf.classes_[proba.argmax(axis=1)] == clf.predict(X))
    assert agree > 0.99  # ties at exactly 0.5 aside
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba)


def test_no_predict_proba_for_hinge():
    clf = MinibatchSGDClassifier(loss="hinge")
    assert not hasattr(clf, "predict_proba")


def test_multiclass_proba_and_decision_shapes():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = MinibatchSGDClassifier(loss="log_loss", random_state=0).fit(X, y)
    assert clf.coef_.shape == (3, 4) and clf.intercept_.shape == (3,)
    assert clf.decision_function(X).shape == (150, 3)
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)
    assert clf.score(X, y) > 0.85
