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

_SAMPLE_ROWS = 500
_POWER_ITERATIONS = 20


def row_scales(X, rows, sample_weight, fit_intercept):
    """``s_i * ||x_i||^2`` (plus ``s_i`` with an intercept) for ``X[rows]``."""
    if sp.issparse(X):
        sq = np.zeros(X.shape[0])
        nonempty = np.diff(X.indptr) > 0
        sq[nonempty] = np.add.reduceat(X.data.astype(np.float64) ** 2, X.indptr[:-1][nonempty])
        sq = sq[rows]
    else:
        Xr = X if rows.size == X.shape[0] else X[rows]
        sq = np.einsum("ij,ij->i", Xr, Xr, dtype=np.float64)
    return sample_weight[rows] * (sq + (1.0 if fit_intercept else 0.0))


def largest_eigenvalue(X, rows, sample_weight, fit_intercept):
    """``lam``: top eigenvalue of ``(1/n) sum_i s_i x_i x_i^T`` over a sample.

    At most 500 of ``rows`` (fixed seed, so deterministic for given data);
    power iteration on whichever is smaller, the (d+1)-square covariance or
    the sample's Gram matrix (they share their non-zero eigenvalues).
    """
    if rows.size == 0:
        return 0.0
    sample = rows
    if rows.size > _SAMPLE_ROWS:
        sample = np.sort(np.random.RandomState(0).choice(rows, _SAMPLE_ROWS, replace=False))
    Xs = X[sample]
    root_s = np.sqrt(sample_weight[sample])
    if sp.issparse(Xs):
        Z = sp.diags(root_s) @ Xs
        gram = np.asarray((Z @ Z.T).todense()) if sample.size <= Xs.shape[1] else None
    else:
        Z = root_s[:, None] * Xs
        gram = Z @ Z.T if sample.size <= Xs.shape[1] else None
    if gram is None:  # few features: the covariance is the small side
        Zd = Z.toarray() if sp.issparse(Z) else Z
        if fit_intercept:
            Zd = np.hstack([Zd, root_s[:, None]])
        M = Zd.T @ Zd
    else:
        M = gram + (np.outer(root_s, root_s) if fit_intercept else 0.0)
    M = M / sample.size
    v = np.ones(M.shape[0]) / np.sqrt(M.shape[0])
    lam = 0.0
    for _ in range(_POWER_ITERATIONS):
        w = M @ v
        lam = float(np.linalg.norm(w))
        if lam == 0.0:
            break
        v = w / lam
    return lam
