"""How curved the data makes a loss: the numbers behind the step-size caps.

For a loss whose second derivative is at most ``beta``, the mean gradient of
a minibatch of ``m`` rows is ``beta * L(m)``-smooth in expectation, with the
expected smoothness (Gower et al., "SGD: General Analysis and Improved
Rates", ICML 2019)

    L(m) <= lam + l_max / m,

where ``lam`` is the largest eigenvalue of ``(1/n) sum_i s_i z_i z_i^T`` and
``l_max = max_i s_i ||z_i||^2`` (``s_i`` the sample weight). A step larger
than about ``2 / (beta * L(m))`` makes the iterates grow without bound.

The engine keeps two blocks apart: the weights (``z_i = x_i``) and the
intercept (``z_i = 1``, so ``lam = mean(s)``, ``l_max = max(s)``). The
intercept is in every row, so on sparse data its block is far more curved
than the features' (reuters: 1.0 against 0.06); a joint cap would hold every
weight to the intercept's step. A positive semi-definite matrix is at most
twice its block diagonal, and its norm is at most the sum of its diagonal
blocks' norms, which gives the two caps of :func:`skgd._engine.make_hyper`:

- losses with a bounded derivative (``Loss.per_sample_floor``) cannot blow
  up, so each block gets its own cap ``1 / (beta * L_block(m))``;
- the others get one cap from ``L_w(m) + L_b(m)``, a bound on the joint
  smoothness, so every step stays within half the stability limit.
"""

from collections import namedtuple

import numpy as np
import scipy.sparse as sp

_SAMPLE_ROWS = 500
_POWER_ITERATIONS = 20

#: ``(lam, l_max)`` of the weights' block and of the intercept's block.
Smoothness = namedtuple("Smoothness", "lam_w l_max_w lam_b l_max_b")
NO_DATA = Smoothness(0.0, 0.0, 0.0, 0.0)


def row_scales(X, rows, sample_weight):
    """``s_i * ||x_i||^2`` for ``X[rows]``."""
    if sp.issparse(X):
        sq = np.zeros(X.shape[0])
        nonempty = np.diff(X.indptr) > 0
        sq[nonempty] = np.add.reduceat(X.data.astype(np.float64) ** 2, X.indptr[:-1][nonempty])
        sq = sq[rows]
    else:
        Xr = X if rows.size == X.shape[0] else X[rows]
        sq = np.einsum("ij,ij->i", Xr, Xr, dtype=np.float64)
    return sample_weight[rows] * sq


def mean_row_sq(X, rows):
    """Mean ``||x_i||^2`` over ``X[rows]`` (0 for no rows)."""
    if rows.size == 0:
        return 0.0
    return float(row_scales(X, rows, np.ones(X.shape[0])).mean())


def largest_eigenvalue(X, rows, sample_weight):
    """``lam``: top eigenvalue of ``(1/n) sum_i s_i x_i x_i^T`` over a sample.

    At most 500 of ``rows`` (fixed seed, so deterministic for given data),
    by power iteration. Sparse rows are first restricted to the columns the
    sample uses, so the cost follows the sample's non-zeros, not the width
    of X; dense rows with few features iterate on their small covariance.
    """
    if rows.size == 0:
        return 0.0
    sample = rows
    if rows.size > _SAMPLE_ROWS:
        # distinct random rows, drawn in O(sample) (choice without
        # replacement would shuffle all the rows)
        draws = np.random.RandomState(0).randint(0, rows.size, 2 * _SAMPLE_ROWS)
        _, first = np.unique(draws, return_index=True)
        picks = draws[np.sort(first)][:_SAMPLE_ROWS]  # distinct, in the order drawn
        sample = rows[np.sort(picks)]
    root_s = np.sqrt(sample_weight[sample])
    Xs = X[sample]
    if sp.issparse(Xs):
        Xs = sp.csr_matrix(Xs)
        cols, inverse = np.unique(Xs.indices, return_inverse=True)
        data = Xs.data.astype(np.float64) * np.repeat(root_s, np.diff(Xs.indptr))
        Z = sp.csr_matrix((data, inverse.reshape(-1), Xs.indptr), shape=(sample.size, cols.size))
        if cols.size == 0:
            return 0.0

        def apply(v):
            return Z.T @ (Z @ v)

        dim = cols.size
    else:
        Z = root_s[:, None] * np.asarray(Xs, dtype=np.float64)
        if Z.shape[1] <= Z.shape[0]:  # few features: the covariance is the small side
            # einsum, not BLAS: for a product this small, waking BLAS threads
            # costs milliseconds on a busy machine
            C = np.einsum("ij,ik->jk", Z, Z)

            def apply(v):
                return C @ v
        else:

            def apply(v):
                return Z.T @ (Z @ v)

        dim = Z.shape[1]
    v = np.ones(dim) / np.sqrt(dim)
    lam = 0.0
    for _ in range(_POWER_ITERATIONS):
        w = apply(v)
        norm = float(np.linalg.norm(w))
        if norm == 0.0:
            break
        lam = norm
        v = w / norm
    return lam / sample.size


def estimate(X, rows, sample_weight, fit_intercept, *, lam_w=None):
    """The :class:`Smoothness` of ``X[rows]``.

    ``lam_w``, when given, is reused rather than estimated again (a stream
    pays for the eigenvalue only when its data grows).
    """
    return estimate_with_trace(X, rows, sample_weight, fit_intercept, lam_w=lam_w)[0]


def estimate_with_trace(X, rows, sample_weight, fit_intercept, *, lam_w=None):
    """:func:`estimate`, and ``mean_i s_i ||x_i||^2`` (from the same pass)."""
    s = sample_weight[rows]
    scales = row_scales(X, rows, sample_weight)
    trace = float(scales.mean()) if scales.size else 0.0
    if lam_w is None:
        lam_w = largest_eigenvalue(X, rows, sample_weight)
    l_max_w = float(scales.max(initial=0.0))
    if not fit_intercept or s.size == 0:
        return Smoothness(lam_w, l_max_w, 0.0, 0.0), trace
    return Smoothness(lam_w, l_max_w, float(s.mean()), float(s.max())), trace
