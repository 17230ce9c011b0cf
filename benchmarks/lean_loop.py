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


def _column(indices, k, start):
    """The column of entry k of a row starting at ``start`` (compiled below)."""


@overload(_column)
def _column_compiled(indices, k, start):
    if isinstance(indices, types.NoneType):  # dense rows: every column, in order
        return lambda indices, k, start: k - start
    return lambda indices, k, start: indices[k]


@njit(cache=True)
def _seed(seed):
    # numba's own legacy generator: its shuffle takes 0.55 ms on 32k rows where
    # a Generator's takes 0.95 ms
    np.random.seed(seed)  # noqa: NPY002


@njit(cache=True)
def _epoch(data, indices, indptr, y, v, scale, b, t, t0, alpha, hinge, decay, order):
    """Shuffle ``order``, then one pass over those rows of the CSR arrays (a dense
    X is given raveled, without ``indices``). Returns the new scale, intercept, t."""
    np.random.shuffle(order)  # noqa: NPY002
    for i in order:
        lo, hi = indptr[i], indptr[i + 1]
        p = 0.0
        for k in range(lo, hi):
            p += data[k] * v[_column(indices, k, lo)]
        eta = 1.0 / (alpha * (t0 + t - 1.0))
        step = -eta * _gradient(hinge, p * scale + b, y[i])
        scale *= max(0.0, 1.0 - eta * alpha)
        if scale < 1e-9:  # fold the scale into v before it underflows
            v *= scale
            scale = 1.0
        if step != 0.0:
            for k in range(lo, hi):
                v[_column(indices, k, lo)] += data[k] * (step / scale)
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
        n, d = X.shape
        if sp.issparse(X):
            args, decay = (X.data, X.indices, X.indptr), 0.01
        else:
            args, decay = (np.ascontiguousarray(X).ravel(), None, np.arange(0, n * d + 1, d)), 1.0
        # scikit-learn's t0: the first step is typw / max(1, loss'(-typw, +1))
        typw = np.sqrt(1.0 / np.sqrt(self.alpha))
        t0 = 1.0 / (typw / max(1.0, _gradient(hinge, -typw, 1.0)) * self.alpha)
        v, scale, b, t = np.zeros(d), 1.0, 0.0, 1.0
        order = np.arange(n)
        _seed(self.random_state)
        for _ in range(self.max_iter):
            scale, b, t = _epoch(*args, signs, v, scale, b, t, t0, self.alpha, hinge, decay, order)
        self.coef_, self.intercept_ = v * scale, b
        return self

    def decision_function(self, X):
        return np.asarray(X @ self.coef_).ravel() + self.intercept_

    def predict(self, X):
        return self.classes_[(self.decision_function(X) > 0).astype(int)]
