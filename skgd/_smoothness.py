"""How curved the data makes a loss: the numbers behind the step-size cap.

For a loss whose second derivative is at most ``beta``, the mean gradient of
a minibatch of ``m`` rows is ``beta * L(m)``-smooth in expectation, with the
expected smoothness (Gower et al., "SGD: General Analysis and Improved
Rates", ICML 2019)

    L(m) <= lam + l_max / m,

where ``lam`` is the largest eigenvalue of ``(1/n) sum_i s_i x_i x_i^T`` and
``l_max = max_i s_i ||x_i||^2`` (``x_i`` extended by a constant 1 when an
intercept is fitted, ``s_i`` the sample weight). A step larger than about
``2 / (beta * L(m))`` makes the iterates grow without bound; the engine caps
the step at ``1 / (beta * L(m))``. The cap never binds for the small steps of
a stable run, and it is what lets ``batch_size`` grow without retuning.
"""

import numpy as np
import scipy.sparse as sp

_SAMPLE_ROWS = 2000
_POWER_ITERATIONS = 30


def data_smoothness(X, rows, sample_weight, fit_intercept):
    """Return ``(lam, l_max)`` for ``X[rows]`` (see the module docstring).

    ``lam`` comes from power iteration on at most 2000 of those rows chosen
    with a fixed seed, so it is deterministic for given data. ``X`` is never
    copied whole.
    """
    d = X.shape[1]
    extra = 1.0 if fit_intercept else 0.0
    if rows.size == 0:
        return 0.0, 0.0
    if sp.issparse(X):
        sq = np.add.reduceat(np.append(X.data, 0.0) ** 2, X.indptr[:-1])
        sq[np.diff(X.indptr) == 0] = 0.0
    else:
        sq = np.einsum("ij,ij->i", X, X, dtype=np.float64)
    l_max = float(np.max(sample_weight[rows] * (sq[rows] + extra)))

    sample = rows
    if rows.size > _SAMPLE_ROWS:
        sample = np.sort(np.random.RandomState(0).choice(rows, _SAMPLE_ROWS, replace=False))
    Xs = X[sample]
    s = sample_weight[sample]
    v = np.ones(d + 1) / np.sqrt(d + 1)
    lam = 0.0
    for _ in range(_POWER_ITERATIONS):
        u = s * (Xs @ v[:d] + extra * v[d])
        w = np.empty(d + 1)
        w[:d] = Xs.T @ u
        w[d] = extra * u.sum()
        w /= sample.size
        lam = float(np.linalg.norm(w))
        if lam == 0.0:
            break
        v = w / lam
    return lam, l_max
