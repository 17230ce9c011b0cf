"""The compiled minibatch SGD pass (numba).

One call of :func:`sgd_pass` runs every minibatch of one epoch (or of one
``partial_fit`` chunk). A minibatch is a chain of small named steps, in the
spirit of optax's ``chain``::

    scores and loss derivatives -> gradient -> clip by value -> clip by
    global norm -> L2 decay -> step (plain or momentum) -> L1 -> average

Each step that can be switched off is an ``overload`` chosen when the pass is
compiled: an option that is off arrives as ``None`` and its step compiles to
nothing. This general pass serves what buffers the gradient (clipping,
momentum), several outputs (one-vs-rest, multinomial), 'auto',
passive-aggressive steps and the undo journal of CSR streams; a
single-output model without those runs :func:`skgd._plain_pass.plain_pass`,
built from the same steps, where averaging and L1 are run-time choices (one
compiled pass per loss, layout and batch kind). Built-in losses arrive as a
:class:`~skgd._loss_kernels.BuiltinLoss` token and are inlined into the
loop; a user's loss arrives as a pair of C function pointers (one compiled
pass serves every user loss, and numba's disk cache keeps working).

Where the steps live
--------------------
- ``skgd._slots``: the slots of the state's ``clock`` and ``norms`` and of
  the ``hyper`` array;
- ``skgd._jit``: the numba options they all share;
- ``skgd._rows``: row primitives on a dataset tuple, ``(array2d,)`` for
  dense C-ordered rows or ``(data, indices, indptr)`` for CSR (int32 or
  int64 indices), ``overload``-ed on that tuple so one source serves both;
- ``skgd._loss_kernels``: calling a loss, class weights, the objective;
- ``skgd._schedule_kernels``: the schedules' step arithmetic;
- ``skgd._update_steps``: clipping, the step with or without momentum;
- ``skgd._lazy_weights``: the lazy scale, the norms, the L1 ledger and the
  lazy average (the weights' representation, see below);
- ``skgd._undo``: the undo journal.

This module keeps the pass itself and the shuffle, and names every step
again (``skgd._kernels.<step>``), as the estimators and tests read them.

Weights
-------
``coef`` has shape ``(n_outputs, n_features)``: one row per output, so all
classes train in the same pass. The real weights are ``scale * coef``: L2
weight decay multiplies ``scale`` only, which keeps a sparse step as cheap as
the non-zeros it touches (Shalev-Shwartz et al. 2007, Bottou 2010). The
state's ``norms`` keep each output's ``sum(coef ** 2)`` (and, with L1 on,
``sum(|coef|)``) up to date as weights change, so the penalty, the objective
and the divergence check never scan all weights.

Averaging (ASGD, Polyak & Juditsky 1992) is lazy too: the sum of the weights
since averaging began is ``avg_coef + clock[AVG_B] * coef``. A step that
changes ``coef[k, j]`` by ``delta`` subtracts ``clock[AVG_B] * delta`` from
``avg_coef[k, j]``, and then ``clock[AVG_B]`` grows by ``scale``.

L1 uses the cumulative penalty of Tsuruoka, Tsujii & Ananiadou (2009): each
touched weight is pulled towards zero by the penalty it has not received yet,
clipped at zero, which produces exact zeros.

Cost
----
A pass costs the non-zeros it reads plus the number of outputs: scratch
space is sized by the largest minibatch's non-zeros, the columns a batch
touches are tracked in the state's persistent ``slot`` array (reset after
every batch), and an undo journal (CSR streams) records the columns of every
row before the row's step (undone newest first, so it needs no per-column
marks). Only momentum (every weight moves with its velocity) and folding the
lazy scale touch every weight.

(``sgd_pass`` compiles in code of other skgd files, such as the built-in
losses of ``skgd/losses.py`` and the steps above: its disk cache, like every
skgd function's, is stamped with a digest of all of skgd's sources, so an
edit anywhere in skgd recompiles it; see ``skgd._numba_cache``.)
"""

import numba
import numpy as np
from numba import types
from numba.extending import overload

from ._jit import _CALL, _INLINE, _JIT  # noqa: F401 - the one definition, named here too
from ._lazy_weights import (  # noqa: F401 - steps of the pass, named here too
    accumulate_average,
    average_intercept,
    average_row,
    average_step,
    fold_scale,
    l1_penalty,
    l2_decay,
    penalize_l1,
    recount_norms,
    row_l1_penalties,
    row_l1_penalty,
)
from ._loss_kernels import (  # noqa: F401 - named here too
    BUILTIN_LOSSES,
    BuiltinLoss,
    BuiltinLossType,
    _is_multiclass,
    add_penalties,
    count_row,
    data_pointer,
    loss_derivatives,
    output_penalty,
    output_stopped,
    output_weight,
    report_loss,
    report_losses,
    scalar_loss,
)
from ._rows import (  # noqa: F401 - named here too
    LOOKAHEAD,
    WEIGHTS_AHEAD,
    column,
    mark_row,
    prefetch,
    prefetch_2d,
    prefetch_row,
    prefetch_weights,
    row_axpy,
    row_dot,
    row_gather_axpy,
    row_span,
    row_sqnorm,
    row_update,
)
from ._schedule_kernels import (  # noqa: F401 - named here too
    AUTO_FIRST_REACH,
    auto_momentum,
    auto_rate,
    auto_step_sizes,
    batch_steps,
    decayed_scale,
    learning_rate,
    minibatch_step,
    pass_would_fold,
    passive_aggressive_step,
    schedule_params,
    schedule_rate,
    step_cap,
    step_caps,
    step_sizes,
    weight_norm_bound,
)
from ._slots import *  # noqa: F403 - every slot, named here too
from ._slots import (
    AVG_B,
    AVG_CHECK,
    BOUND,
    GRAD_SQ,
    H_BATCH_SIZE,
    H_ETA0,
    H_FIT_INTERCEPT,
    H_PREFETCH_ROWS,
    H_PREFETCH_WEIGHTS,
    H_SCHEDULE,
    H_WEIGHTED_OBJECTIVE,
    PASSES,
    SCALE,
    T,
)
from ._undo import copy_column, journal_row, journal_undo  # noqa: F401 - named here too
from ._update_steps import (  # noqa: F401 - named here too
    apply_gradient,
    clip_by_global_norm,
    clip_by_value,
    dense_gradient_buffer,
    direct_step,
    momentum_coefficient,
    step_dense_batch,
    step_rows,
)
from .schedules import AUTO, PA1, PA2

# --------------------------------------------------------------- shuffling


# --------------------------------------------------------------- shuffling


@numba.njit(**_JIT)
def splitmix64(state):
    """One step of SplitMix64 (Steele, Lea & Flood 2014): (new state, output)."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@numba.njit(**_JIT)
def shuffle_in_place(order, seed, pass_number):
    """Fisher-Yates shuffle of ``order``, a pure function of (seed, pass).

    Keeping the generator's whole state in two integers makes a pass
    reproducible from the engine state alone (pickling, failed calls).
    """
    state = np.uint64(seed) ^ (np.uint64(pass_number) * np.uint64(0xD1B54A32D192ED03))
    state, _ = splitmix64(state)
    for i in range(order.shape[0] - 1, 0, -1):
        state, r = splitmix64(state)
        j = np.int64(r % np.uint64(i + 1))
        tmp = order[i]
        order[i] = order[j]
        order[j] = tmp


def _on(rule, *names):
    """Compile-time: whether any of the rule's steps ``names`` is on."""
    field_types = dict(zip(rule.fields, rule.types, strict=True))
    return any(not isinstance(field_types[name], types.NoneType) for name in names)


def _tracks_columns(rule):
    """Compile-time: whether batches list the columns they touch (for the
    gradient buffer of clipping and momentum, or for L1)."""
    return _on(rule, "clip_value", "clip_norm", "momentum", "l1")


def _buffers_gradient(rule):
    """Compile-time: whether a batch forms its gradient before stepping."""
    return _on(rule, "clip_value", "clip_norm", "momentum")


def batch_length(per_sample, batch, remaining):
    """Rows in the next batch: 1 when ``per_sample`` is None (a compile-time
    constant, so the batch loops of per-sample SGD fold away), else
    ``min(batch, remaining)``."""


@overload(batch_length, jit_options=_JIT)
def _batch_length(per_sample, batch, remaining):
    if isinstance(per_sample, types.NoneType):
        return lambda per_sample, batch, remaining: 1
    return lambda per_sample, batch, remaining: min(batch, remaining)


def rule_flags(rule):
    """``(tracks_columns, buffers_gradient)`` as compile-time constants."""


@overload(rule_flags, jit_options=_JIT)
def _rule_flags(rule):
    track, buffered = _tracks_columns(rule), _buffers_gradient(rule)
    return lambda rule: (track, buffered)



# ------------------------------------------------------------------- the pass


@numba.njit(**_INLINE)
def row_losses(X, Y, i, coef, intercept, scale, out_weight, loss, loss_params, scores,
               row_derivs, values, report):
    """Row ``i``'s scores (0 for a stopped output), and the loss's
    derivatives and values there (see :func:`loss_derivatives`)."""
    for k in range(coef.shape[0]):
        if output_stopped(out_weight, Y, k):
            scores[k] = 0.0  # (its derivative's weight is 0)
        else:
            scores[k] = scale * row_dot(X, i, coef, k) + intercept[k]
    loss_derivatives(loss, loss_params, scores, Y, i, row_derivs, values, report)


# The rows of a batch are independent until they are tallied: with
# ``n_jobs`` (see skgd._threads.batch_threads) a long batch computes each
# row's numbers by the same ``row_losses`` on numba's threads, and the pass
# tallies and steps by them in the batch's order, as without threads: the
# same model, bit for bit. ``silent`` is a report that records nothing
# (``report[0] != 0``); which row failed first is told in order afterwards
# (:func:`report_losses`).
@numba.njit(parallel=True, **_JIT)
def rows_losses_threaded(X, Y, order, start, m, coef, intercept, scale, out_weight, loss,
                         loss_params, silent, row_bufs, prefetch_x, prefetch_w):
    scores, derivs, values = row_bufs
    for r in numba.prange(m):
        # each thread fetches ahead in its own share of the batch (a range
        # of consecutive rows), as the sequential loop does
        if prefetch_x and r + LOOKAHEAD < m:
            prefetch_row(X, order[start + r + LOOKAHEAD])
        if prefetch_w and r + WEIGHTS_AHEAD < m:
            prefetch_weights(X, order[start + r + WEIGHTS_AHEAD], coef)
        row_losses(X, Y, order[start + r], coef, intercept, scale, out_weight, loss,
                   loss_params, scores[r], derivs[r], values[r], silent)


@numba.njit(**_JIT)
def sgd_pass(X, Y, sample_weight, order, shuffle_seed, state, hyper, loss, loss_params, rule,
             journal, batch_cap, report, per_sample, out_weight, objective, row_bufs):
    """Run one pass of minibatch SGD over the rows ``order`` (in that order).

    Parameters
    ----------
    X : tuple
        Dataset tuple, dense ``(X,)`` or CSR ``(data, indices, indptr)``.
    Y : ndarray of shape (n_samples, n_outputs) or (n_samples, 1), float64
        Target of each output (+1/-1 for one-vs-rest classification), or,
        for a multiclass loss, the class index in column 0.
    sample_weight : ndarray of shape (n_samples,), float64
        Weight of each row (class weights included).
    order : ndarray of int64
        Rows to visit, in order; consecutive runs of ``batch_size`` form the
        minibatches. Shuffled in place first when ``shuffle_seed >= 0``.
    shuffle_seed : int
        Seed of this state's shuffles (with ``clock[PASSES]``), or -1.
    state : tuple of ndarray
        ``(coef, intercept, avg_coef, avg_intercept, l1_applied, velocity,
        velocity_b, clock, norms, slot)``, updated in place (module
        docstring); ``slot`` is scratch, all -1 between batches.
    hyper : ndarray of float64
        Run-time hyper-parameters, slots ``HYPER_FIELDS``.
    loss : BuiltinLoss or tuple of two C function pointers
    loss_params : tuple of float
    rule : Rule
        The optional steps, each None when off (skgd._engine.Rule).
    journal : tuple of ndarray or None
        The undo journal of a CSR stream (skgd._engine), or None.
    batch_cap : int
        At least the number of distinct columns any one batch touches.
    report : ndarray of shape (5,), float64
        Where a user's loss reports its first non-finite value (see
        :func:`loss_derivatives`).
    per_sample : None or bool
        None when ``batch_size`` is 1: the pass is compiled for one row per
        step.
    out_weight : ndarray of shape (n_outputs, 2) or None
        Weights of each output's derivative on negative and positive targets
        (see :func:`output_weight`), or None for all ones.
    row_bufs : tuple of three ndarray of shape (batch_size, n_outputs), or None
        None: the pass runs on the caller's thread alone. Else each
        batch's scores, loss derivatives and values are computed on
        numba's threads into them (see :func:`rows_losses_threaded`), and
        tallied in the batch's order; the pass is compiled apart for it.
        Not with a journal, 'auto' (which sums the batch's squared
        gradients) or passive-aggressive steps.
    objective : ndarray of shape (3, n_outputs), float64
        Row 0 is set to the sums over the rows of each output's loss plus
        penalty, at the weights before that row's minibatch step, row 1 to
        the rows' total weight (row 2 is scratch). With
        ``hyper[H_WEIGHTED_OBJECTIVE]`` a row counts with its sample weight
        times its output weight, else with 1 (scikit-learn's tol rule
        watches that unweighted sum). A multiclass loss adds its loss to
        output 0, each output's penalty to its own.
    """
    (coef, intercept, avg_coef, avg_intercept, l1_applied, velocity, velocity_b, clock, norms,
     slot) = state
    n_out = coef.shape[0]
    n_rows = order.shape[0]
    batch = np.int64(hyper[H_BATCH_SIZE])
    fit_intercept = hyper[H_FIT_INTERCEPT] != 0.0
    prefetch_w = hyper[H_PREFETCH_WEIGHTS] != 0.0
    prefetch_x = hyper[H_PREFETCH_ROWS] != 0.0
    track, buffered = rule_flags(rule)
    # a per-sample step without a gradient buffer penalizes its row's
    # columns directly: no marking (see row_l1_penalty)
    row_l1 = per_sample is None and not buffered

    derivs = np.empty((min(batch, n_rows), n_out))
    scores = np.empty(n_out)
    row_derivs = np.empty(n_out)
    values = np.empty(n_out)
    passive_aggressive = PA1 <= hyper[H_SCHEDULE] <= PA2
    auto = hyper[H_SCHEDULE] == AUTO
    width = batch_cap if track and not row_l1 else 0
    grad = np.zeros((n_out, width if buffered else 0))
    grad_b = np.zeros(n_out)
    touched = np.empty(width, dtype=np.int64)
    dense_grad = dense_gradient_buffer(X, per_sample, n_out)
    silent = np.ones(5)  # a report that records nothing (see rows_losses_threaded)

    if shuffle_seed >= 0:
        shuffle_in_place(order, shuffle_seed, np.int64(clock[PASSES]))
    clock[PASSES] += 1.0
    weighted_objective = hyper[H_WEIGHTED_OBJECTIVE] != 0.0
    objective[:, :] = 0.0

    for start in range(0, n_rows, batch):
        m = batch_length(per_sample, batch, n_rows - start)
        t = clock[T]
        eta, eta_b = step_sizes(hyper, t, m)

        # 1. Loss derivatives at the current weights.
        scale = clock[SCALE]
        grad_sq = 0.0
        if row_bufs is not None:  # (decided when the pass is compiled)
            rows_losses_threaded(X, Y, order, start, m, coef, intercept, scale, out_weight,
                                 loss, loss_params, silent, row_bufs, prefetch_x, prefetch_w)
        for r in range(m):
            i = order[start + r]
            if row_bufs is None:
                ahead = start + r + LOOKAHEAD
                if prefetch_x and ahead < n_rows:
                    a = order[ahead]
                    prefetch_row(X, a)
                    prefetch(sample_weight, a)
                    prefetch_2d(Y, a, 0)
                ahead = start + r + WEIGHTS_AHEAD
                if prefetch_w and ahead < n_rows:
                    prefetch_weights(X, order[ahead], coef)
                journal_row(journal, X, i, coef, avg_coef, l1_applied)
                row_losses(X, Y, i, coef, intercept, scale, out_weight, loss, loss_params, scores,
                           row_derivs, values, report)
            else:  # the row's numbers from the threads, its failure told in order
                scores, row_derivs, values = row_bufs[0][r], row_bufs[1][r], row_bufs[2][r]
                report_losses(loss, report, scores, row_derivs, values, Y, i)
            sw = sample_weight[i]
            # No clamp on the derivatives (scikit-learn clamps at 1e12): a
            # diverging run must overflow and be reported, not stay finite
            # but huge.
            for k in range(n_out):
                weight = sw * output_weight(out_weight, Y, i, k)
                counted = weight if weighted_objective else 1.0
                count_row(per_sample, objective, k, counted, values[k], rule.l1, hyper, scale,
                          norms)
                derivs[r, k] = weight * row_derivs[k]
                grad_sq += derivs[r, k] * derivs[r, k]
            if passive_aggressive:
                # the row's own step tau replaces the batch's eta
                sq_norm = row_sqnorm(X, i)
                for k in range(n_out):
                    tau = passive_aggressive_step(hyper[H_SCHEDULE], hyper[H_ETA0], values[k],
                                                  sq_norm)
                    derivs[r, k] *= tau / eta

        add_penalties(per_sample, objective, rule.l1, hyper, scale, norms)

        # 'auto' measures its step on the batch's gradients (DoG)
        rate = -1.0
        full_eta = eta
        if auto:
            if clock[BOUND] == 0.0:
                clock[BOUND] = weight_norm_bound(hyper, objective)
            clock[GRAD_SQ] += grad_sq
            rate = auto_rate(clock, hyper, norms, intercept)
            eta, eta_b, full_eta = auto_step_sizes(hyper, t, m, batch, rate)
        # (a short batch takes a full one's momentum: see auto_step_sizes)
        mu = momentum_coefficient(rule.momentum, auto, full_eta, batch * rate)

        n_touched = 0
        if track and not row_l1:
            for r in range(m):
                n_touched = mark_row(X, order[start + r], slot, touched, n_touched)

        # 2. The batch's mean gradient, clipped (when a step buffers it).
        factor = 1.0
        if buffered:
            for r in range(m):
                i = order[start + r]
                for k in range(n_out):
                    if derivs[r, k] != 0.0:
                        row_gather_axpy(X, i, derivs[r, k] / m, slot, grad, k)
            for k in range(n_out):
                s = 0.0
                for r in range(m):
                    s += derivs[r, k]
                grad_b[k] = s / m if fit_intercept else 0.0
            clip_by_value(grad, grad_b, n_touched, rule.clip_value)
            factor = clip_by_global_norm(grad, grad_b, n_touched, rule.clip_norm)
            if factor < 1.0:
                if auto:
                    eta, eta_b, _ = auto_step_sizes(hyper, t, m, batch, rate, factor)
                else:
                    eta, eta_b = step_sizes(hyper, t, m, factor, rate)

        # 3. L2 weight decay. 'auto''s decay keeps pace with its momentum's
        # long-run step eta / (1 - mu): its steps then still settle at the
        # penalised optimum (decay at eta alone would weaken the penalty
        # by the factor 1 - mu there).
        if l2_decay(clock, hyper, eta / (1.0 - mu) if auto else eta, journal):
            fold_scale(coef, clock, avg_coef, norms)
        scale = clock[SCALE]

        # 4. The gradient step.
        if buffered:
            apply_gradient(rule.momentum, mu, coef, intercept, avg_coef, velocity, velocity_b,
                           grad, grad_b, touched, n_touched, slot, eta * factor,
                           eta_b * factor, clock, norms)
            for k in range(n_out):
                for s in range(n_touched):
                    grad[k, s] = 0.0
        else:
            clock[AVG_CHECK] += direct_step(X, per_sample, order, start, m, derivs,
                                            -eta / (m * scale), coef, avg_coef, clock[AVG_B],
                                            rule.l1, rule.average, dense_grad, norms)
            if fit_intercept:
                for k in range(n_out):
                    s = 0.0
                    for r in range(m):
                        s += derivs[r, k]
                    intercept[k] -= eta_b / m * s

        # 5. L1: the cumulative penalty on the weights this batch touched.
        if row_l1:
            # ('auto' reads every output's norms: the stopped ones' too)
            row_l1_penalties(rule.l1, X, order[start], coef, l1_applied, avg_coef, clock, norms,
                             eta, out_weight, Y, not auto)
        else:
            l1_penalty(rule.l1, coef, l1_applied, avg_coef, clock, norms, touched, n_touched,
                       eta)

        if track and not row_l1:
            for s in range(n_touched):
                slot[touched[s]] = -1

        # 6. Averaging: fold this step's weights into the running sum.
        # 'auto' weighs step s by s^2 (polynomial-decay averaging): the
        # average forgets the far-off start while it keeps the noise down
        accumulate_average(rule.average, clock, intercept, avg_intercept, t, m, scale,
                           (t + m - 1.0) ** 2 if auto else 1.0)

        clock[T] = t + m
