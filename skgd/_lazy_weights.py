"""The compiled rules of the lazy weight representation, whose Python side
is :class:`skgd._state.EngineState`.

The real weights are ``scale * coef``: L2 weight decay multiplies the scale
only (Shalev-Shwartz et al. 2007, Bottou 2010), and a small scale is folded
into ``coef``. Each output's ``norms`` follow every change. L1 is the
cumulative penalty of Tsuruoka, Tsujii & Ananiadou (2009), with a ledger of
what each weight has paid. The sum of the averaged weights (ASGD, Polyak &
Juditsky 1992) is ``avg_coef + clock[AVG_B] * coef``: a step that changes
``coef[k, j]`` by ``delta`` subtracts ``clock[AVG_B] * delta`` from
``avg_coef[k, j]``, and then ``clock[AVG_B]`` grows by ``scale``.
"""

import numba
from numba import types
from numba.extending import overload

from ._jit import _CALL, _INLINE, _JIT
from ._loss_kernels import output_stopped
from ._rows import _dense, column, row_axpy, row_span
from ._schedule_kernels import decayed_scale
from ._slots import ABS, AVG_B, AVG_CHECK, AVG_N, H_L2, H_SCALE_MIN, L1_U, SCALE, SQ

# ------------------------------------------------------------ the lazy scale


@numba.njit(**_JIT)
def recount_norms(coef, norms):
    """Recompute every output's ``norms`` exactly."""
    for k in range(coef.shape[0]):
        sq = 0.0
        ab = 0.0
        for j in range(coef.shape[1]):
            v = coef[k, j]
            sq += v * v
            ab += abs(v)
        norms[k, SQ] = sq
        norms[k, ABS] = ab


@numba.njit(**_JIT)
def fold_scale(coef, clock, avg_coef, norms):
    """Multiply ``scale`` into ``coef`` and reset it to 1.

    Keeps ``coef`` from growing as ``1 / scale``; with averaging on it also
    makes the lazy sum explicit (``avg_coef += AVG_B * coef``), which bounds
    the cancellation in ``avg_coef + AVG_B * coef``. Touches every weight,
    so the norms are recounted exactly on the way.
    """
    scale = clock[SCALE]
    b = clock[AVG_B]
    for k in range(coef.shape[0]):
        for j in range(coef.shape[1]):
            if b != 0.0:
                avg_coef[k, j] += b * coef[k, j]
            coef[k, j] *= scale
    clock[AVG_B] = 0.0
    clock[SCALE] = 1.0
    recount_norms(coef, norms)


def l2_decay(clock, hyper, eta, journal):
    """Step 2: L2 weight decay, lazily through the scale. Returns whether the
    scale got small enough to be folded into the weights (never inside a
    journaled pass, which was promised no fold: see :func:`pass_would_fold`).

    The fold itself is left to the caller: kept out of this small step, it
    does not stop LLVM from inlining the step into the per-row loop (a call
    there cost a third of an epoch on adult).
    """


@overload(l2_decay, jit_options=_JIT)
def _l2_decay(clock, hyper, eta, journal):
    may_fold = journal is None or isinstance(journal, types.NoneType)

    def impl(clock, hyper, eta, journal):
        l2 = hyper[H_L2]
        if l2 > 0.0:
            clock[SCALE] = decayed_scale(clock[SCALE], eta, l2)
            return may_fold and clock[SCALE] < hyper[H_SCALE_MIN]
        return False

    return impl


# ------------------------------------------------------------ the L1 ledger


def l1_penalty(l1, coef, l1_applied, avg_coef, clock, norms, touched, n_touched, eta):
    """Step: the cumulative L1 penalty on the weights this batch touched
    (Tsuruoka, Tsujii & Ananiadou 2009); nothing when L1 is off."""


@overload(l1_penalty, jit_options=_JIT)
def _l1_penalty(l1, coef, l1_applied, avg_coef, clock, norms, touched, n_touched, eta):
    if isinstance(l1, types.NoneType):
        return lambda l1, coef, l1_applied, avg_coef, clock, norms, touched, n_touched, eta: None

    def impl(l1, coef, l1_applied, avg_coef, clock, norms, touched, n_touched, eta):
        clock[L1_U] += eta * l1
        u = clock[L1_U]
        scale = clock[SCALE]
        b = clock[AVG_B]
        moved = 0.0
        for s in range(n_touched):
            j = touched[s]
            for k in range(coef.shape[0]):
                d_sq, d_ab, d_moved = penalize_l1(j, u, scale, b, coef, l1_applied, avg_coef, k)
                norms[k, SQ] += d_sq
                norms[k, ABS] += d_ab
                moved += d_moved
        clock[AVG_CHECK] += moved

    return impl


def row_l1_penalties(l1, X, i, coef, l1_applied, avg_coef, clock, norms, eta, out_weight, Y,
                     skip_stopped):
    """Step: :func:`l1_penalty` for a per-sample step, on row ``i``'s columns
    (no marking: see :func:`row_l1_penalty`), each output's in turn; the
    stopped one-vs-rest classes are skipped if ``skip_stopped`` (their
    weights are put back as they stopped). Nothing when L1 is off."""


@overload(row_l1_penalties, jit_options=_JIT)
def _row_l1_penalties(l1, X, i, coef, l1_applied, avg_coef, clock, norms, eta, out_weight, Y,
                      skip_stopped):
    if isinstance(l1, types.NoneType):
        return (lambda l1, X, i, coef, l1_applied, avg_coef, clock, norms, eta, out_weight, Y,
                skip_stopped: None)

    def impl(l1, X, i, coef, l1_applied, avg_coef, clock, norms, eta, out_weight, Y,
             skip_stopped):
        clock[L1_U] += eta * l1
        u = clock[L1_U]
        scale = clock[SCALE]
        b = clock[AVG_B]
        moved = 0.0
        for k in range(coef.shape[0]):
            if skip_stopped and output_stopped(out_weight, Y, k):
                continue
            d_sq, d_ab, d_moved = row_l1_penalty(X, i, u, scale, b, coef, l1_applied, avg_coef, k)
            norms[k, SQ] += d_sq
            norms[k, ABS] += d_ab
            moved += d_moved
        clock[AVG_CHECK] += moved

    return impl


def row_l1_penalty(X, i, u, scale, avg_b, W, Q, A, k):
    """The cumulative L1 penalty on row ``i``'s columns of ``W[k]`` (per-sample
    steps: the row's columns are the step's); returns the changes of
    ``sum(W**2)`` and ``sum(|W|)`` and the lazy average's movement.

    The penalty is idempotent on a column (a second application finds the
    weight already paid up to ``u``), so a CSR row's duplicate columns need
    no marking. ``Q`` is the ledger of penalties applied, ``A`` the lazy
    average (corrected only while ``avg_b`` is non-zero).
    """


@numba.njit(**_INLINE)
def penalize_l1(j, u, scale, avg_b, W, Q, A, k):
    """The cumulative L1 penalty on ``W[k, j]`` (see :func:`row_l1_penalty`)."""
    old = W[k, j]
    w = scale * old
    z = w
    if w > 0.0:
        w = max(0.0, w - (u + Q[k, j]))
    elif w < 0.0:
        w = min(0.0, w + (u - Q[k, j]))
    Q[k, j] += w - z
    new = w / scale
    W[k, j] = new
    moved = 0.0
    if avg_b != 0.0:
        A[k, j] -= avg_b * (new - old)
        moved = abs(avg_b * (new - old))
    return new * new - old * old, abs(new) - abs(old), moved


@overload(row_l1_penalty, jit_options=_INLINE)
def _row_l1_penalty(X, i, u, scale, avg_b, W, Q, A, k):
    if _dense(X):

        def impl(X, i, u, scale, avg_b, W, Q, A, k):
            x = X[0]
            dsq = 0.0
            dab = 0.0
            moved = 0.0
            for j in range(x.shape[1]):
                if x[i, j] != 0:
                    a, b_, c = penalize_l1(j, u, scale, avg_b, W, Q, A, k)
                    dsq += a
                    dab += b_
                    moved += c
            return dsq, dab, moved

    else:

        def impl(X, i, u, scale, avg_b, W, Q, A, k):
            data, indices, indptr = X
            dsq = 0.0
            dab = 0.0
            moved = 0.0
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                if data[jj] != 0:
                    a, b_, c = penalize_l1(column(indices, jj), u, scale, avg_b, W, Q, A, k)
                    dsq += a
                    dab += b_
                    moved += c
            return dsq, dab, moved

    return impl



# ------------------------------------------------------- the lazy average


def average_row(average, X, i, c, avg_coef, k, avg_b):
    """The lazy-average correction of a direct row update (``avg -= AVG_B *
    delta``); nothing when averaging is off."""


@overload(average_row, jit_options=_CALL)
def _average_row(average, X, i, c, avg_coef, k, avg_b):
    if isinstance(average, types.NoneType):
        return lambda average, X, i, c, avg_coef, k, avg_b: 0.0

    def impl(average, X, i, c, avg_coef, k, avg_b):
        if avg_b != 0.0:
            return row_axpy(X, i, -avg_b * c, avg_coef, k)
        return 0.0

    return impl


def accumulate_average(average, clock, intercept, avg_intercept, t, m, scale, weight):
    """Step: fold this batch's weights into the running average with weight
    ``weight`` (lazily for the weights, explicitly for the intercepts);
    nothing when off."""


@overload(accumulate_average, jit_options=_JIT)
def _accumulate_average(average, clock, intercept, avg_intercept, t, m, scale, weight):
    if isinstance(average, types.NoneType):
        return lambda average, clock, intercept, avg_intercept, t, m, scale, weight: None

    def impl(average, clock, intercept, avg_intercept, t, m, scale, weight):
        if t + m - 1 >= average:
            clock[AVG_B], clock[AVG_N], inv = average_step(clock[AVG_B], clock[AVG_N], scale,
                                                           weight)
            for k in range(intercept.shape[0]):
                avg_intercept[k] = average_intercept(avg_intercept[k], intercept[k], inv)

    return impl


@numba.njit(**_JIT)
def average_step(avg_b, avg_n, scale, weight):
    """A step joins the average with weight ``weight``: the lazy sum's
    coefficient ``AVG_B`` and the count ``AVG_N`` after it, and the step's
    share of the total, ``(avg_b, avg_n, inv)``."""
    avg_b += weight * scale
    avg_n += weight
    return avg_b, avg_n, weight / avg_n


@numba.njit(**_JIT)
def average_intercept(avg, intercept, inv):
    """The running average ``avg`` of an intercept after a step that joins it
    with weight ``inv`` (its share of the total weight averaged)."""
    return avg + (intercept - avg) * inv
