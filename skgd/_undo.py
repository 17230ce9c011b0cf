"""The undo journal of CSR streams: the compiled pass records the weights of
every row's columns before the row's step, and a failed call undoes the
records newest first (``skgd._engine.Undo``).
"""

import numba
from numba import types
from numba.extending import overload

from ._jit import _JIT
from ._rows import column, row_span

# ------------------------------------------------------------ the compiled journal


@numba.njit(**_JIT)
def copy_column(dst, dst_col, src, src_col):
    """``dst[:, dst_col] = src[:, src_col]``."""
    for k in range(dst.shape[0]):
        dst[k, dst_col] = src[k, src_col]


def journal_row(journal, X, i, coef, avg_coef, l1_applied):
    """Record the current weights, averaging sums and L1 ledger of row
    ``i``'s columns, before this batch changes them.

    Every row is recorded, repeats included, in order: undoing the records
    in reverse puts back, for each column, its value from before the pass.
    So the journal needs no per-column marks, and it reads what the row's
    scores read next (from cache).
    """


@overload(journal_row, jit_options=_JIT)
def _journal_row(journal, X, i, coef, avg_coef, l1_applied):
    if isinstance(journal, types.NoneType):
        return lambda journal, X, i, coef, avg_coef, l1_applied: None

    def impl(journal, X, i, coef, avg_coef, l1_applied):
        cols, saved_coef, saved_avg, saved_l1, count = journal
        data, indices, indptr = X
        n = count[0]
        lo, hi = row_span(indptr, i)
        for jj in range(lo, hi):
            j = column(indices, jj)
            cols[n] = j
            copy_column(saved_coef, n, coef, j)
            if saved_avg.shape[1] > 0:
                copy_column(saved_avg, n, avg_coef, j)
            if saved_l1.shape[1] > 0:
                copy_column(saved_l1, n, l1_applied, j)
            n += 1
        count[0] = n

    return impl


@numba.njit(**_JIT)
def journal_undo(journal, coef, avg_coef, l1_applied):
    """Put back every recorded value, newest first (one compiled call, so no
    interrupt can land half way)."""
    cols, saved_coef, saved_avg, saved_l1, count = journal
    for n in range(count[0] - 1, -1, -1):
        j = cols[n]
        copy_column(coef, j, saved_coef, n)
        if saved_avg.shape[1] > 0:
            copy_column(avg_coef, j, saved_avg, n)
        if saved_l1.shape[1] > 0:
            copy_column(l1_applied, j, saved_l1, n)
    count[0] = 0

