"""A lean reference loop: SGDClassifier's per-sample epoch, and nothing else.

Binary ``hinge`` or ``log_loss`` with an L2 penalty and the 'optimal'
learning rate, as scikit-learn runs them (``eta = 1 / (alpha (t0 + t - 1))``
with its ``t0``; the weights kept as ``scale * v`` so that the L2 shrink is
one multiplication, folded into ``v`` when ``scale`` gets tiny; the intercept
step damped by 0.01 on sparse input; rows in a fresh random order every
epoch). No stopping rule, no loss sums, no options: the floor the benchmark
rows set beside skgd (``benchmarks/run.py``).
"""

import numpy as np
import scipy.sparse as sp
from numba import njit, types
from numba.extending import overload
from sklearn.base import BaseEstimator, ClassifierMixin


@njit(cache=True)
def _gradient(hinge, p, y):
    """d loss / d p for a label y in {-1, +1}."""
    z = p * y
    if hinge:
        return -y if z <= 1.0 else 0.0
    if z > 18.0:
        return -y * np.exp(-z)
    return -y if z < -18.0 else -y / (np.exp(z) + 1.0)


def _row(X, indices, indptr, i):
    """Row i's values and columns (compiled by the overload below)."""


@overload(_row)
def _row_compiled(X, indices, indptr, i):
    if isinstance(indptr, types.NoneType):  # dense: X[i], every column
        return lambda X, indices, indptr, i: (X[i], indices)
    return lambda X, indices, indptr, i: (X[indptr[i]:indptr[i + 1]],
                                          indices[indptr[i]:indptr[i + 1]])


@njit(cache=True)
def _epoch(X, indices, indptr, y, v, scale, b, t, t0, alpha, hinge, decay, order):
    """One pass over the rows in ``order``; dense X when ``indptr`` is None
    (``indices`` is then every column). Returns the new scale, intercept, t."""
    for i in order:
        vals, cols = _row(X, indices, indptr, i)
        p = 0.0
        for k in range(vals.size):
            p += vals[k] * v[cols[k]]
        eta = 1.0 / (alpha * (t0 + t - 1.0))
        step = -eta * _gradient(hinge, p * scale + b, y[i])
        scale *= max(0.0, 1.0 - eta * alpha)
        if scale < 1e-9:  # fold the scale into v before it underflows
            v *= scale
            scale = 1.0
        if step != 0.0:
            for k in range(vals.size):
                v[cols[k]] += vals[k] * (step / scale)
        b += step * decay
        t += 1.0
    return scale, b, t


class LeanSGD(ClassifierMixin, BaseEstimator):
    """The lean loop as a two-class estimator (``fit``, ``predict``, ``score``)."""

    def __init__(self, loss="hinge", alpha=1e-4, max_iter=5, random_state=0):
        self.loss = loss
        self.alpha = alpha
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        signs = np.where(y == self.classes_[1], 1.0, -1.0)
        hinge = self.loss == "hinge"
        if sp.issparse(X):
            args, decay = (X.data, X.indices, X.indptr), 0.01
        else:
            args, decay = (np.ascontiguousarray(X), np.arange(X.shape[1]), None), 1.0
        # scikit-learn's t0: the first step is typw / max(1, loss'(-typw, +1))
        typw = np.sqrt(1.0 / np.sqrt(self.alpha))
        t0 = 1.0 / (typw / max(1.0, _gradient(hinge, -typw, 1.0)) * self.alpha)
        v, scale, b, t = np.zeros(X.shape[1]), 1.0, 0.0, 1.0
        rng = np.random.RandomState(self.random_state)
        for _ in range(self.max_iter):
            scale, b, t = _epoch(*args, signs, v, scale, b, t, t0, self.alpha, hinge, decay,
                                 rng.permutation(X.shape[0]))
        self.coef_, self.intercept_ = v * scale, b
        return self

    def decision_function(self, X):
        return np.asarray(X @ self.coef_).ravel() + self.intercept_

    def predict(self, X):
        return self.classes_[(self.decision_function(X) > 0).astype(int)]
