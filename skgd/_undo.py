"""Undo: what a failed or interrupted call needs to put the state back.

For CSR streams the compiled pass records, in a journal, the weights of
every row's columns before the row's step (so a call costs what its data
touches, however wide the model); otherwise the :class:`Undo` keeps a copy
of the arrays the pass may change (a dense row touches every weight anyway).
This module holds both sides of the journal: the compiled recording and
undoing, and the Python object that chooses and rolls back.
"""

import numba
import numpy as np
import scipy.sparse as sp
from numba import types
from numba.extending import overload

from ._jit import _JIT
from ._rows import column, row_span
from ._schedule_kernels import pass_would_fold
from ._state import _PER_FEATURE

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


# ----------------------------------------------------------------- undo


class Undo:
    """What a pass changed, to put it back if the call fails.

    Created before anything changes: it keeps the small arrays (intercepts,
    clock, averaged intercepts, velocity of the intercepts) and the
    references of the per-feature arrays, which :meth:`EngineState.conform`
    may replace. :meth:`prepare` then either copies the per-feature arrays
    whole (dense data, momentum, or a pass that folds the lazy scale) or
    gives the pass a journal in which the kernel records the columns of
    every row before the row's step, repeats included, undone newest first
    (CSR streams): then a call costs what its data touches, however wide
    the model. A pass split across threads (:class:`SplitPass`) gets one
    journal per part of the outputs.
    """

    _PER_FEATURE = _PER_FEATURE
    _SMALL = ("intercept", "avg_intercept", "velocity_b", "clock", "norms")

    def __init__(self, state):
        self.state = state
        self.small = {name: _saved(getattr(state, name)) for name in self._SMALL}
        self.refs = {name: getattr(state, name) for name in self._PER_FEATURE}
        self.scalars = (state.eta, state.smoothness, state.lam_trace, state.version)
        self.parts = [slice(None)]
        self.journals = None
        self.full = None

    def prepare(self, X, rows, hyper, rule, parts=None):
        """Choose the journals or a full copy for a pass over ``X[rows]``,
        whose outputs are split into ``parts`` (slices; None: one part)."""
        state = self.state
        if (sp.issparse(X) and rule.momentum is None
                and not pass_would_fold(state.clock, np.asarray(hyper, dtype=np.float64),
                                          rows.size, rule.clip_norm is not None)):
            self.parts = parts or self.parts
            self.journals = [_new_journal(state, X, rows, len(range(*part.indices(
                state.n_outputs)))) for part in self.parts]
        else:
            self.full = {name: _saved(getattr(state, name)) for name in self._PER_FEATURE}

    @property
    def journal(self):
        """The journal of an unsplit pass (None: none)."""
        return None if self.journals is None else self.journals[0]

    def rollback(self):
        """Put the state back as it was before the pass."""
        state = self.state
        if self.journals is not None:
            for part, journal in zip(self.parts, self.journals, strict=True):
                journal_undo(journal, state.coef[part], state.avg_coef[part],
                               state.l1_applied[part])
        for name, value in (self.full or self.refs).items():
            setattr(state, name, value)
        for name, value in self.small.items():
            setattr(state, name, value)
        state.eta, state.smoothness, state.lam_trace, state.version = self.scalars
        state.drop_scratch()


def _saved(array):
    """A copy of ``array`` to put back; an empty array (an option that is
    off) cannot be written to, so it is kept as it is."""
    return array.copy() if array.size else array


def _new_journal(state, X, rows, n_out):
    """Journal arrays for a pass of ``n_out`` outputs over ``X[rows]``: one
    record per non-zero the rows hold (see :func:`journal_row`)."""
    nnz = int(X.indptr[-1] - X.indptr[0]) if rows.size == X.shape[0] else int(
        np.diff(X.indptr)[rows].sum())
    return (
        np.empty(nnz, dtype=np.int64),
        np.empty((n_out, nnz), dtype=state.coef.dtype),
        np.empty((n_out, nnz if state.avg_coef.size else 0)),
        np.empty((n_out, nnz if state.l1_applied.size else 0)),
        np.zeros(1, dtype=np.int64),
    )
