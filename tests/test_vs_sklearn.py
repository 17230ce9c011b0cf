"""At least as good as scikit-learn's SGD, measured side by side."""

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor

from conftest import as_int32_csr

SETTINGS = dict(alpha=1e-5, max_iter=10, tol=None, random_state=0)


@pytest.mark.parametrize("data", ["adult", "reuters"])
@pytest.mark.parametrize("loss", ["hinge", "log_loss"])
def test_batch_size_1_matches_sgdclassifier_accuracy(request, data, loss):
    X, y, Xt, yt = request.getfixturevalue(data)
    theirs = SGDClassifier(loss=loss, **SETTINGS).fit(as_int32_csr(X), y)
    ours = MinibatchSGDClassifier(loss=loss, batch_size=1, **SETTINGS).fit(X, y)
    assert ours.score(Xt, yt) >= theirs.score(as_int32_csr(Xt), yt) - 0.005


@pytest.mark.parametrize("data", ["adult", "reuters"])
def test_defaults_match_sgdclassifier_defaults(request, data):
    X, y, Xt, yt = request.getfixturevalue(data)
    theirs = SGDClassifier(random_state=0).fit(as_int32_csr(X), y)
    ours = MinibatchSGDClassifier(random_state=0).fit(X, y)
    assert ours.score(Xt, yt) >= theirs.score(as_int32_csr(Xt), yt) - 0.005


@pytest.mark.parametrize("loss", ["squared_error", "huber", "epsilon_insensitive"])
def test_regressor_matches_sgdregressor_on_abalone(abalone, loss):
    X, y = abalone
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0)
    kw = dict(loss=loss, max_iter=50, tol=None, random_state=0, epsilon=1.0)
    theirs = SGDRegressor(**kw).fit(X_tr, y_tr).score(X_te, y_te)
    ours = MinibatchSGDRegressor(**kw).fit(X_tr, y_tr).score(X_te, y_te)
    assert ours >= theirs - 0.01


@pytest.mark.parametrize("batch_size", [1, 32])
def test_probabilities_at_least_as_good_as_sgdclassifier_on_adult(adult, batch_size):
    X, y, Xt, yt = adult
    kw = dict(loss="log_loss", alpha=1e-4, max_iter=20, tol=None, random_state=0, average=True)
    theirs = SGDClassifier(**kw).fit(as_int32_csr(X), y).predict_proba(as_int32_csr(Xt))
    ours = MinibatchSGDClassifier(batch_size=batch_size, **kw).fit(X, y).predict_proba(Xt)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0)
    assert log_loss(yt, ours) <= log_loss(yt, theirs) + 0.002
