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

That limit is the worst row's (``l_max``), far below what per-sample steps
stand in practice; so at ``batch_size=1`` the built-in squared-type losses
take scikit-learn's uncapped steps, and the cap only rescues a run whose
steps diverge (``skgd._training.Trainer.uncapped_first``).
"""

import threading
from collections import namedtuple

import numba
import numpy as np
import scipy.sparse as sp

from ._jit import _JIT

_SAMPLE_ROWS = 500
_POWER_ITERATIONS = 20
# power iteration on a sparse sample keeps the columns' own numbers when X is
# at most this many times as wide as the sample has non-zeros
_DIRECT_WIDTH = 4

#: ``(lam, l_max)`` of the weights' block and of the intercept's block.
Smoothness = namedtuple("Smoothness", "lam_w l_max_w lam_b l_max_b")
NO_DATA = Smoothness(0.0, 0.0, 0.0, 0.0)


# The row norms of the X each thread's current training call has seen.
_call = threading.local()


class row_norms_once:
    """Within the block (one training call), :func:`row_sq_norms` computes
    the norms of each X once: validation's finiteness check, the step caps
    and 'auto' all read them, and on dense data each is a pass over X.

    X is held only inside the block, so a later call never sees norms of
    data changed in place since; a nested block shares the outer one's.
    (A class, not a generator: every ``partial_fit`` call enters one, and
    this costs a tenth of ``contextlib``'s.)
    """

    __slots__ = ("_outer",)

    def __enter__(self):
        self._outer = getattr(_call, "norms", None) is not None
        if not self._outer:
            _call.norms = {}

    def __exit__(self, *exc_info):
        if not self._outer:
            _call.norms = None


def row_sq_norms(X):
    """``||x_i||^2`` of every row of a validated dense or CSR ``X``, in float64
    (one pass over the values; none inside :func:`row_norms_once` when that
    X was seen before). Read-only: the array may be shared."""
    memo = getattr(_call, "norms", None)
    if memo is not None:
        seen = memo.get(id(X))
        if seen is not None and seen[0] is X:
            return seen[1]
    if sp.issparse(X):
        norms = _csr_row_sq(X.data, X.indptr)
    else:
        norms = _dense_row_sq(X)
    if memo is not None:
        memo[id(X)] = (X, norms)
    return norms


def _dense_row_sq(X):
    if X.dtype == np.float64:
        # einsum's order of summation, which the step caps of float64 models
        # have always been computed in (a compiled sum moves them by ulps)
        return np.einsum("ij,ij->i", X, X)
    return _float32_row_sq(X)


def row_scales(X, rows, sample_weight):
    """``s_i * ||x_i||^2`` for ``X[rows]``."""
    return sample_weight[rows] * row_sq_norms(X)[rows]


def mean_row_sq(X, rows):
    """Mean ``||x_i||^2`` over ``X[rows]`` (0 for no rows)."""
    if rows.size == 0:
        return 0.0
    return float(row_sq_norms(X)[rows].mean())


def _sample_rows(rows):
    """At most ``_SAMPLE_ROWS`` distinct rows of ``rows``, in increasing order,
    drawn with a fixed seed (so deterministic for given data) in O(sample):
    choice without replacement would shuffle all the rows."""
    if rows.size <= _SAMPLE_ROWS:
        return rows
    draws = np.random.RandomState(0).randint(0, rows.size, 2 * _SAMPLE_ROWS)
    _, first = np.unique(draws, return_index=True)
    picks = draws[np.sort(first)][:_SAMPLE_ROWS]  # distinct, in the order drawn
    return rows[np.sort(picks)]


def largest_eigenvalue(X, rows, sample_weight):
    """``lam``: top eigenvalue of ``(1/n) sum_i s_i x_i x_i^T`` over a sample.

    At most 500 of ``rows``, by power iteration. Sparse rows are gathered
    (compiled) with their columns renumbered, so the cost follows the
    sample's non-zeros, not the width of X; dense rows with few features
    iterate on their small covariance.
    """
    if rows.size == 0:
        return 0.0
    sample = _sample_rows(rows).astype(np.int64)
    root_s = np.sqrt(sample_weight[sample])
    if sp.issparse(X):
        values, cols, starts, dim = _csr_sample(X.data, X.indices, X.indptr, X.shape[1],
                                                sample, root_s)
        if values.size == 0:
            return 0.0

        def apply(v):
            return _gram_times(values, cols, starts, v)
    else:
        Z = root_s[:, None] * np.asarray(X[sample], dtype=np.float64)
        dim = Z.shape[1]
        if dim <= Z.shape[0]:  # few features: the covariance is the small side
            # einsum, not BLAS: for a product this small, waking BLAS threads
            # costs milliseconds on a busy machine
            C = np.einsum("ij,ik->jk", Z, Z)

            def apply(v):
                return C @ v
        else:

            def apply(v):
                return Z.T @ (Z @ v)
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


def estimate_with_trace(X, rows, sample_weight, fit_intercept, *, lam_w=None):
    """The :class:`Smoothness` of ``X[rows]``, and ``mean_i s_i ||x_i||^2``
    (from the same pass).

    ``lam_w``, when given, is reused rather than estimated again (a stream
    pays for the eigenvalue only when its data grows).
    """
    s = sample_weight[rows]
    scales = row_scales(X, rows, sample_weight)
    trace = float(scales.mean()) if scales.size else 0.0
    if lam_w is None:
        lam_w = largest_eigenvalue(X, rows, sample_weight)
    l_max_w = float(scales.max(initial=0.0))
    if not fit_intercept or s.size == 0:
        return Smoothness(lam_w, l_max_w, 0.0, 0.0), trace
    return Smoothness(lam_w, l_max_w, float(s.mean()), float(s.max())), trace


# ------------------------------------------------------------ compiled parts
# (float64 sums whatever the data's dtype; the inputs are validated arrays)


@numba.njit(**_JIT)
def _float32_row_sq(X):
    # summed in float64: 2.5x faster than einsum asked for a float64 result
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        s = 0.0
        for j in range(X.shape[1]):
            v = np.float64(X[i, j])
            s += v * v
        out[i] = s
    return out


@numba.njit(**_JIT)
def _csr_row_sq(data, indptr):
    n = indptr.shape[0] - 1
    out = np.empty(n)
    for i in range(n):
        s = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            v = np.float64(data[p])
            s += v * v
        out[i] = s
    return out


@numba.njit(**_JIT)
def _csr_sample(data, indices, indptr, n_features, sample, root_s):
    """The rows ``sample`` of a CSR matrix, each scaled by ``root_s``, as
    ``(values, cols, starts, dim)``: CSR arrays over ``dim`` columns.

    The columns keep their numbers when X is at most a few times as wide as
    the sample has non-zeros; for wider X (hashed text) they are renumbered
    ``0 .. dim - 1`` by sorting, so the cost follows the sample's non-zeros,
    not the width. (Columns the sample does not use stay at zero after one
    product: both give the same eigenvalue.)
    """
    starts = np.zeros(sample.shape[0] + 1, dtype=np.int64)
    for r in range(sample.shape[0]):
        i = sample[r]
        starts[r + 1] = starts[r] + indptr[i + 1] - indptr[i]
    nnz = starts[-1]
    values = np.empty(nnz)
    cols = np.empty(nnz, dtype=np.int64)
    for r in range(sample.shape[0]):
        i = sample[r]
        offset = starts[r] - indptr[i]
        for p in range(indptr[i], indptr[i + 1]):
            values[p + offset] = root_s[r] * np.float64(data[p])
            cols[p + offset] = indices[p]
    if n_features <= _DIRECT_WIDTH * nnz:
        return values, cols, starts, n_features
    order = np.argsort(cols)
    renumbered = np.empty(nnz, dtype=np.int64)
    dim = 0
    for q in range(nnz):
        if q > 0 and cols[order[q]] != cols[order[q - 1]]:
            dim += 1
        renumbered[order[q]] = dim
    return values, renumbered, starts, dim + 1


@numba.njit(**_JIT)
def _gram_times(values, cols, starts, v):
    """``Z^T (Z v)`` for ``Z`` in CSR form, in one pass over its rows:
    ``w += z_i (z_i . v)``."""
    w = np.zeros(v.shape[0])
    for r in range(starts.shape[0] - 1):
        s = 0.0
        for p in range(starts[r], starts[r + 1]):
            s += values[p] * v[cols[p]]
        for p in range(starts[r], starts[r + 1]):
            w[cols[p]] += values[p] * s
    return w
