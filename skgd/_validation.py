"""Checks of what the user passes in: data, weights and initial values.

Each check refuses with a message that names the problem, before any
training state is touched (see skgd._base: a failed call leaves the model
as it was).
"""

import numpy as np
import scipy.sparse as sp

from . import _smoothness as smoothness

FLOATS = [np.float64, np.float32]
INDEX_TYPES = [np.int32, np.int64]
CSR_TYPES = (sp.csr_matrix, sp.csr_array)
# Values below this pass the fast finiteness-and-magnitude check of a fitted
# model's input: their squares, summed over any array, stay finite.
FAST_LIMIT = 1e150


def overflow_sentence(epoch=1):
    """scikit-learn's words for arithmetic that overflowed (code matches on
    them); skgd says them first whenever it refuses or stops for that reason,
    including when it sees the overflow coming before the first epoch."""
    return (f"Floating-point under-/overflow occurred at epoch #{epoch}. Scaling input data "
            "with StandardScaler or MinMaxScaler might help.")


def sum_of_squares(v):
    """``sum(v ** 2)`` without BLAS: its threads wake up for a reduction this
    small and cost milliseconds on a busy machine."""
    flat = v.reshape(-1)
    return np.einsum("i,i->", flat, flat)


def check_weight_magnitude(weights, name):
    """Refuse weights so large that weighted gradients overflow float64."""
    if not np.isfinite(sum_of_squares(np.asarray(weights, dtype=np.float64))):
        raise ValueError(
            f"{overflow_sentence()} {name} has values too large to train on (largest "
            f"{float(np.max(weights)):.3g}): weighted gradients overflow float64. Only the "
            "ratios between weights matter to the model; divide them by their mean."
        )


def squares_finite(X):
    """Whether the sum of the squared values of X is finite (from its row
    norms, which the step caps read again in the same call)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(smoothness.row_sq_norms(X).sum()))


def check_magnitude(X):
    """Refuse training data too large for the engine's float64 arithmetic.

    The step-size cap and the objective need sums of squared features; once
    those overflow float64 (values beyond about 1e154), training can only
    diverge or stand still, so say so up front. float32 data never trips
    this: its largest value squared is about 1e77.
    """
    v = X.data if sp.issparse(X) else X.reshape(-1)
    if v.dtype != np.float64 or v.size == 0:
        return
    with np.errstate(over="ignore"):
        if np.isfinite(sum_of_squares(v)):
            return
    big = float(max(abs(v.max()), abs(v.min())))
    raise ValueError(
        f"{overflow_sentence()} X has values too large to train on (largest magnitude "
        f"{big:.3g}): the sum of their squares overflows float64. Scale the features "
        "(e.g. StandardScaler)."
    )


def check_csr_structure(X):
    """Refuse a CSR matrix whose structure would send compiled code outside
    its arrays: column indices out of range, or an ``indptr`` that is not a
    non-decreasing run from 0 to the number of stored values. (scipy does
    not check this when a matrix is built from raw arrays.) Costs one pass
    over the indices.
    """
    indices, indptr = X.indices, X.indptr
    n_rows, n_features = X.shape
    if (indptr.shape != (n_rows + 1,) or indptr[0] != 0
            or indptr[-1] != indices.shape[0] or indices.shape[0] != X.data.shape[0]
            or (n_rows and np.diff(indptr).min() < 0)):
        raise ValueError(
            "X is a malformed CSR matrix: its indptr must run from 0 to the number "
            f"of stored values ({X.data.shape[0]}) without decreasing, one entry per "
            "row plus one. Rebuild it with scipy.sparse.csr_matrix((data, indices, "
            "indptr), shape=...) and check it with X.check_format()."
        )
    if indices.size:
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= n_features:
            bad = low if low < 0 else high
            raise ValueError(
                f"X is a malformed CSR matrix: its column indices must lie in [0, "
                f"{n_features}) but include {bad}. Check how it was built "
                "(X.check_format() reports this too)."
            )


def check_sample_weight(sample_weight, n_samples):
    """``sample_weight`` as float64 of shape (n_samples,): ones when None;
    refused when not finite, negative, all zero or too large."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=np.float64)
    if sp.issparse(sample_weight):
        raise TypeError(
            "sample_weight must be a 1-d array-like of shape "
            f"({n_samples},), not a sparse matrix."
        )
    sw = np.asarray(sample_weight)
    if sw.ndim == 0:
        if not np.issubdtype(sw.dtype, np.number) or np.iscomplexobj(sw):
            raise ValueError(
                f"sample_weight must be real numbers; got {sample_weight!r}."
            )
        sw = np.full(n_samples, float(sw))
    if sw.ndim != 1 or sw.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight.shape == {sw.shape}, expected ({n_samples},)."
        )
    if not np.issubdtype(sw.dtype, np.number) or np.iscomplexobj(sw):
        raise ValueError(f"sample_weight must be real numbers; got dtype {sw.dtype}.")
    sw = sw.astype(np.float64)
    bad = ~np.isfinite(sw) | (sw < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"sample_weight must be finite and non-negative; got {sw[i]} at index {i}."
        )
    if not sw.any():
        raise ValueError("sample_weight is zero for every sample: nothing to learn from.")
    check_weight_magnitude(sw, "sample_weight")
    return sw


def real_array(value, name):
    """``value`` as a float64 array; complex numbers, dates and non-numbers
    are refused (not silently truncated or reinterpreted)."""
    arr = np.asarray(value)
    if np.iscomplexobj(arr) or arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got an array of dtype {arr.dtype}.")
    return arr.astype(np.float64)

