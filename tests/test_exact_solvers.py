"""SGD reaches the optimum of exact solvers on real data."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor


def _logistic_objective(X, y, coef, intercept, alpha):
    z = y * (X @ coef.ravel() + intercept[0])
    return np.mean(np.logaddexp(0.0, -z)) + 0.5 * alpha * float(coef.ravel() @ coef.ravel())


def _ridge_objective(X, y, coef, intercept, alpha):
    r = X @ coef + intercept[0] - y
    return 0.5 * np.mean(r * r) + 0.5 * alpha * float(coef @ coef)


@pytest.mark.parametrize("sparse", [True, False], ids=["csr", "dense"])
def test_log_loss_reaches_logistic_regression_objective_on_adult(adult, sparse):
    X, y = adult[:2]
    if not sparse:
        X = X.toarray()
    alpha = 1e-4
    n = X.shape[0]
    exact = LogisticRegression(C=1.0 / (alpha * n), tol=1e-10, max_iter=10_000).fit(X, y)
    best = _logistic_objective(X, y, exact.coef_, exact.intercept_, alpha)
    sgd = MinibatchSGDClassifier(
        loss="log_loss", alpha=alpha, average=True, learning_rate="constant", eta0=0.01,
        batch_size=1, max_iter=30, tol=None, random_state=0,
    ).fit(X, y)
    ours = _logistic_objective(X, y, sgd.coef_, sgd.intercept_, alpha)
    assert ours >= best * (1 - 1e-9)  # the exact optimum really is optimal
    assert (ours - best) / best < 1e-3


@pytest.mark.parametrize("batch_size", [1, 32])
def test_squared_error_reaches_ridge_objective_on_abalone(abalone, batch_size):
    X, y = abalone
    alpha = 1e-3
    exact = Ridge(alpha=alpha * X.shape[0]).fit(X, y)
    best = _ridge_objective(X, y, exact.coef_, np.atleast_1d(exact.intercept_), alpha)
    sgd = MinibatchSGDRegressor(
        alpha=alpha, average=True, learning_rate="constant", eta0=0.01,
        batch_size=batch_size, max_iter=200, tol=None, random_state=0,
    ).fit(X, y)
    ours = _ridge_objective(X, y, sgd.coef_, sgd.intercept_, alpha)
    assert ours >= best * (1 - 1e-9)
    assert (ours - best) / best < 1e-3
