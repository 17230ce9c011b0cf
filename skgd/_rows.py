"""Row primitives of the compiled passes on a *dataset tuple*: ``(X,)`` for
dense C-ordered rows, or ``(data, indices, indptr)`` for CSR (int32 or int64
indices). Each is an ``overload`` chosen by the layout when a pass is
compiled, so one pass source serves both: dot products and norms of a row,
updates of a weight row, the gather into a batch's compact gradient, the
marking of a batch's columns, and prefetch hints.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ._jit import _INLINE, _JIT

# Rows are visited in a random order, so each one is a cache miss the CPU
# cannot predict; fetching a few rows ahead overlaps those misses with work.
# The weights a sparse row reads are fetched once its indices have arrived,
# WEIGHTS_AHEAD rows ahead.
LOOKAHEAD = 8
WEIGHTS_AHEAD = 2


# ------------------------------------------------------------ prefetching


def _prefetch_codegen(n_indices):
    """Code of ``llvm.prefetch`` of an array element given ``n_indices``
    indices (read, high temporal locality, data cache)."""

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, list(args[1:1 + n_indices]),
                                       wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return codegen


@intrinsic
def prefetch(typingctx, arr, idx):
    """Ask the CPU to bring ``arr[idx]`` into cache; a hint, with no effect
    on results."""
    if not isinstance(arr, types.Array) or arr.ndim != 1:
        return None
    return types.void(arr, types.intp), _prefetch_codegen(1)


@intrinsic
def prefetch_2d(typingctx, arr, i, j):
    """:func:`prefetch` of ``arr[i, j]`` for a 2-D array (indexing it whole,
    rather than through a row view)."""
    if not isinstance(arr, types.Array) or arr.ndim != 2:
        return None
    return types.void(arr, types.intp, types.intp), _prefetch_codegen(2)




def _dense(X):
    return len(X) == 1


# --------------------------------------------------------------- row helpers


# CSR positions and columns are read as unsigned integers: numba then emits
# no wrap-around test (a negative index counts from the end) on each access,
# which cost a fifth to a third of a sparse epoch of short rows. The
# estimators check that indptr is non-decreasing from 0 and every column
# index lies in [0, n_features) before any pass (skgd._base).


@numba.njit(**_JIT)
def row_span(indptr, i):
    """``(start, stop)`` of CSR row ``i``'s entries, unsigned."""
    return np.uint64(indptr[i]), np.uint64(indptr[i + 1])


@numba.njit(**_JIT)
def column(indices, jj):
    """The column of CSR entry ``jj``, unsigned."""
    return np.uint64(indices[jj])



# The helpers index 2-D arrays directly (``W[k, j]``, ``X[0][i, j]``): a
# row view such as ``W[k]`` would be reference-counted on every call.


def row_dot(X, i, W, k):
    """``X[i] . W[k]`` (compiled; dense or CSR)."""


@overload(row_dot, jit_options=_JIT)
def _row_dot(X, i, W, k):
    if _dense(X):

        def impl(X, i, W, k):
            x = X[0]
            s = 0.0
            for j in range(x.shape[1]):
                s += x[i, j] * W[k, j]
            return s

    else:

        def impl(X, i, W, k):
            data, indices, indptr = X
            s = 0.0
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                s += data[jj] * W[k, column(indices, jj)]
            return s

    return impl


def row_sqnorm(X, i):
    """``||X[i]||^2`` (compiled; dense or CSR)."""


@overload(row_sqnorm, jit_options=_JIT)
def _row_sqnorm(X, i):
    if _dense(X):

        def impl(X, i):
            x = X[0]
            s = 0.0
            for j in range(x.shape[1]):
                s += x[i, j] * x[i, j]
            return s

    else:

        def impl(X, i):
            data, indices, indptr = X
            s = 0.0
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                s += data[jj] * data[jj]
            return s

    return impl


def row_update(X, i, c, W, k, l1):
    """``W[k] += c * X[i]``; returns the changes of ``sum(W**2)`` and, when L1
    is on (``l1`` not None), of ``sum(|W|)`` (else 0)."""


@overload(row_update, jit_options=_INLINE)
def _row_update(X, i, c, W, k, l1):
    track_abs = not isinstance(l1, types.NoneType)
    if _dense(X):

        def impl(X, i, c, W, k, l1):
            x = X[0]
            dsq = 0.0
            dab = 0.0
            for j in range(x.shape[1]):
                old = W[k, j]
                new = old + c * x[i, j]
                W[k, j] = new
                dsq += new * new - old * old
                if track_abs:
                    dab += abs(new) - abs(old)
            return dsq, dab

    else:

        def impl(X, i, c, W, k, l1):
            data, indices, indptr = X
            dsq = 0.0
            dab = 0.0
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                j = column(indices, jj)
                old = W[k, j]
                new = old + c * data[jj]
                W[k, j] = new
                dsq += new * new - old * old
                if track_abs:
                    dab += abs(new) - abs(old)
            return dsq, dab

    return impl


def row_axpy(X, i, c, W, k):
    """``W[k] += c * X[i]``; returns ``sum(|c * X[i]|)``."""


@overload(row_axpy, jit_options=_JIT)
def _row_axpy(X, i, c, W, k):
    if _dense(X):

        def impl(X, i, c, W, k):
            x = X[0]
            moved = 0.0
            for j in range(x.shape[1]):
                d = c * x[i, j]
                W[k, j] += d
                moved += abs(d)
            return moved

    else:

        def impl(X, i, c, W, k):
            data, indices, indptr = X
            moved = 0.0
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                d = c * data[jj]
                W[k, column(indices, jj)] += d
                moved += abs(d)
            return moved

    return impl


def row_gather_axpy(X, i, c, slot, G, k):
    """``G[k, slot[j]] += c * X[i, j]``: a row into a batch's compact gradient."""


@overload(row_gather_axpy, jit_options=_JIT)
def _row_gather_axpy(X, i, c, slot, G, k):
    if _dense(X):

        def impl(X, i, c, slot, G, k):
            x = X[0]
            for j in range(x.shape[1]):
                if x[i, j] != 0.0:
                    G[k, slot[j]] += c * x[i, j]

    else:

        def impl(X, i, c, slot, G, k):
            data, indices, indptr = X
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                if data[jj] != 0.0:
                    G[k, slot[column(indices, jj)]] += c * data[jj]

    return impl


def prefetch_row(X, i):
    """Prefetch row ``i`` (every cache line of it)."""


@overload(prefetch_row, jit_options=_JIT)
def _prefetch_row(X, i):
    if _dense(X):

        def impl(X, i):
            x = X[0]
            for j in range(0, x.shape[1], 8):
                prefetch_2d(x, i, j)

    else:

        def impl(X, i):
            data, indices, indptr = X
            lo, hi = indptr[i], indptr[i + 1]
            for jj in range(lo, hi, 8):
                prefetch(data, jj)
                prefetch(indices, jj)

    return impl


def prefetch_weights(X, i, coef):
    """Prefetch the weights row ``i`` will read (CSR: scattered over a model
    that may be far larger than the cache; dense rows read every weight
    in order, which the CPU prefetches by itself)."""


@overload(prefetch_weights, jit_options=_JIT)
def _prefetch_weights(X, i, coef):
    if _dense(X):
        return lambda X, i, coef: None

    def impl(X, i, coef):
        data, indices, indptr = X
        lo, hi = row_span(indptr, i)
        for jj in range(lo, hi):
            for k in range(coef.shape[0]):
                prefetch_2d(coef, k, column(indices, jj))

    return impl


def mark_row(X, i, slot, touched, n_touched):
    """Give each column where row ``i`` is non-zero a slot in the batch's
    compact gradient (``slot[j]``, listed in ``touched``); return the count.

    Dense and CSR rows mark the same columns, so the lazy L1 penalty and
    clipping act identically on both layouts.
    """


@overload(mark_row, jit_options=_JIT)
def _mark_row(X, i, slot, touched, n_touched):
    if _dense(X):

        def impl(X, i, slot, touched, n_touched):
            x = X[0]
            for j in range(x.shape[1]):
                if x[i, j] != 0 and slot[j] < 0:
                    slot[j] = n_touched
                    touched[n_touched] = j
                    n_touched += 1
            return n_touched

    else:

        def impl(X, i, slot, touched, n_touched):
            data, indices, indptr = X
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                j = column(indices, jj)
                if data[jj] != 0 and slot[j] < 0:
                    slot[j] = n_touched
                    touched[n_touched] = j
                    n_touched += 1
            return n_touched

    return impl
