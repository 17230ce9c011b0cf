"""The compiled pass of a single-output model under the plain update rule.

Binary classification and regression with the options most fits use: a
built-in or user scalar loss, every learning-rate schedule but 'auto' and
passive-aggressive, L2 (lazily, through the scale), L1 and elastic net,
averaging, sample and class weights, per-sample steps or minibatches, dense
or CSR rows. Options that need a gradient buffer (clipping, momentum), more
than one output, 'auto', passive-aggressive steps or an undo journal run
through :func:`skgd._kernels.sgd_pass`, which computes the same steps.

Why a pass of its own: on short sparse rows (text: 13-44 non-zeros) the cost
of an epoch is per-row bookkeeping, not the non-zeros. Here the scalar state
(sample count, lazy scale, intercept, averaging sums, norms, objective sums)
lives in local variables for the whole pass, written back to the state's
arrays only around the rare steps that read them there (a fold of the
scale, the L1 penalty) and at the end; the weights are one output's row, so
nothing loops over outputs. And the pass is compiled per loss, layout, dtype
and per-sample-or-minibatch only: averaging and L1 are run-time choices
(each adds only its own per-coordinate work), so trying them compiles
nothing new.

The arithmetic is :func:`~skgd._kernels.sgd_pass`'s, in the same order: the
two give the same models up to the rounding of a regrouped sum.
"""

import numba
import numpy as np

from . import _kernels as K
from ._jit import _INLINE, _ORDERED

_JIT = K._JIT


@numba.njit(**_INLINE)
def row_loss(X, Y, i, coef, scale, b, loss, loss_params, report):
    """Row ``i``'s score, and the loss's value and derivative there."""
    p = scale * K.row_dot(X, i, coef, 0) + b
    value, d = K.scalar_loss(loss, loss_params, p, Y[i, 0], report, 0, i)
    return p, value, d


@numba.njit(**_ORDERED)
def tally_row(Y, sample_weight, i, value, d, weight_pos, weight_neg, weighted, derivs, r,
              total, batch_counted):
    """Weigh row ``i``'s derivative ``d`` into ``derivs[r, 0]``; returns the
    objective's sum and the batch's counted weight with the row added (in
    the batch's order: see ``_ORDERED``)."""
    weight = sample_weight[i] * (weight_pos if Y[i, 0] > 0.0 else weight_neg)
    counted = weight if weighted else 1.0
    derivs[r, 0] = weight * d
    return total + counted * value, batch_counted + counted


# The rows' scores and losses of a batch are independent of each other: with
# ``n_jobs`` (see skgd._threads.batch_threads) a long batch computes them on
# numba's threads, each row by the same ``row_loss``, into ``out[r]``; the
# caller then tallies them in the batch's order, as the sequential loop
# does, so the model is the sequential one bit for bit. ``silent`` is a
# report that records nothing (``report[0] != 0``): which of the rows failed
# first is told afterwards, in order (``K.report_loss``).
@numba.njit(parallel=True, **_JIT)
def row_losses_threaded(X, Y, order, start, m, coef, scale, b, loss, loss_params, silent, out,
                        prefetch_x, prefetch_w):
    for r in numba.prange(m):
        # each thread fetches ahead in its own share of the batch (a range
        # of consecutive rows), as the sequential loop does
        if prefetch_x and r + K.LOOKAHEAD < m:
            K.prefetch_row(X, order[start + r + K.LOOKAHEAD])
        if prefetch_w and r + K.WEIGHTS_AHEAD < m:
            K.prefetch_weights(X, order[start + r + K.WEIGHTS_AHEAD], coef)
        p, value, d = row_loss(X, Y, order[start + r], coef, scale, b, loss, loss_params,
                               silent)
        out[r, 0] = p
        out[r, 1] = value
        out[r, 2] = d


@numba.njit(**_JIT)
def plain_pass(X, Y, sample_weight, order, shuffle_seed, state, hyper, loss, loss_params,
               average_start, l1, batch_cap, report, per_sample, out_weight, objective,
               row_out):
    """Run one pass over the rows ``order`` of a single-output model.

    The arguments are :func:`skgd._kernels.sgd_pass`'s, except:

    average_start : float
        Sample count from which the average runs (``inf``: no averaging).
    l1 : float
        L1 strength (0: none).
    out_weight : ndarray of shape (1, 2)
        The output's weights on negative and positive targets (ones when
        there are no class weights).
    row_out : ndarray of shape (batch_size, 3) or None
        None: the pass runs on the caller's thread alone. An array: each
        batch's scores and losses are computed on numba's threads (as many
        as ``numba.set_num_threads`` allows) into it, see
        :func:`row_losses_threaded`; the pass is compiled apart for it.
    """
    (coef, intercept, avg_coef, avg_intercept, l1_applied, velocity, velocity_b, clock, norms,
     slot) = state
    n_rows = order.shape[0]
    batch = np.int64(hyper[K.H_BATCH_SIZE])
    fit_intercept = hyper[K.H_FIT_INTERCEPT] != 0.0
    weighted = hyper[K.H_WEIGHTED_OBJECTIVE] != 0.0
    prefetch_w = hyper[K.H_PREFETCH_WEIGHTS] != 0.0
    prefetch_x = hyper[K.H_PREFETCH_ROWS] != 0.0
    l2 = hyper[K.H_L2]
    scale_min = hyper[K.H_SCALE_MIN]
    weight_neg = out_weight[0, 0]
    weight_pos = out_weight[0, 1]
    averaging = average_start < np.inf
    with_l1 = l1 > 0.0
    # the schedule and the step caps, in registers for the pass
    schedule = K.schedule_params(hyper)
    caps = K.step_caps(hyper, batch)
    floor = hyper[K.H_CAP_FLOOR] != 0.0
    intercept_decay = hyper[K.H_INTERCEPT_DECAY]

    derivs = np.empty((min(batch, n_rows), 1))
    touched = np.empty(batch_cap if with_l1 and per_sample is not None else 0, dtype=np.int64)
    dense_grad = K.dense_gradient_buffer(X, per_sample, 1)
    silent = np.ones(5)  # a report that records nothing (see row_losses_threaded)

    if shuffle_seed >= 0:
        K.shuffle_in_place(order, shuffle_seed, np.int64(clock[K.PASSES]))
    clock[K.PASSES] += 1.0

    # the scalar state, in registers for the pass
    t = clock[K.T]
    scale = clock[K.SCALE]
    avg_b = clock[K.AVG_B]
    avg_n = clock[K.AVG_N]
    moved = clock[K.AVG_CHECK]
    b = intercept[0]
    avg_ib = avg_intercept[0] if averaging else 0.0
    sq = norms[0, K.SQ]
    ab = norms[0, K.ABS]
    total = 0.0  # objective: sum of counted loss + penalty
    counted_sum = 0.0  # the rows' weight in it

    for start in range(0, n_rows, batch):
        m = K.batch_length(per_sample, batch, n_rows - start)
        if m != batch:  # the short batch at the end of the pass
            caps = K.step_caps(hyper, m)
        rate = K.schedule_rate(schedule, t + 0.5 * (m - 1))
        eta, eta_b = K.batch_steps(rate, m, caps, floor, intercept_decay)

        # 1. Loss derivatives at the current weights.
        batch_counted = 0.0
        if row_out is None:  # (decided when the pass is compiled)
            for r in range(m):
                ahead = start + r + K.LOOKAHEAD
                if prefetch_x and ahead < n_rows:
                    a = order[ahead]
                    K.prefetch_row(X, a)
                    K.prefetch(sample_weight, a)
                    K.prefetch_2d(Y, a, 0)
                ahead = start + r + K.WEIGHTS_AHEAD
                if prefetch_w and ahead < n_rows:
                    K.prefetch_weights(X, order[ahead], coef)
                i = order[start + r]
                p, value, d = row_loss(X, Y, i, coef, scale, b, loss, loss_params, report)
                total, batch_counted = tally_row(Y, sample_weight, i, value, d, weight_pos,
                                                 weight_neg, weighted, derivs, r, total,
                                                 batch_counted)
        else:
            row_losses_threaded(X, Y, order, start, m, coef, scale, b, loss, loss_params,
                                silent, row_out, prefetch_x, prefetch_w)
            for r in range(m):
                i = order[start + r]
                p, value, d = row_out[r, 0], row_out[r, 1], row_out[r, 2]
                K.report_loss(loss, report, value, d, p, Y[i, 0], 0, i)
                total, batch_counted = tally_row(Y, sample_weight, i, value, d, weight_pos,
                                                 weight_neg, weighted, derivs, r, total,
                                                 batch_counted)
        # each row's penalty at the weights it saw: once per batch (the same
        # terms a per-sample pass adds row by row)
        penalty = 0.5 * l2 * scale * scale * sq
        if with_l1:
            penalty += l1 * abs(scale) * ab
        total += batch_counted * penalty
        counted_sum += batch_counted

        n_touched = 0
        if with_l1 and per_sample is not None:  # (a per-sample step penalizes its row)
            for r in range(m):
                n_touched = K.mark_row(X, order[start + r], slot, touched, n_touched)

        # 2. L2 weight decay, through the scale.
        if l2 > 0.0:
            scale = K.decayed_scale(scale, eta, l2)
            if scale < scale_min:
                clock[K.SCALE] = scale
                clock[K.AVG_B] = avg_b
                K.fold_scale(coef, clock, avg_coef, norms)
                scale = clock[K.SCALE]
                avg_b = clock[K.AVG_B]
                sq = norms[0, K.SQ]
                ab = norms[0, K.ABS]

        # 3. The gradient step.
        step = -eta / (m * scale)
        if per_sample is None:
            c = step * derivs[0, 0]
            if c != 0.0:
                i = order[start]
                if with_l1:
                    d_sq, d_ab = K.row_update(X, i, c, coef, 0, l1)
                    ab += d_ab
                else:
                    d_sq, _ = K.row_update(X, i, c, coef, 0, None)
                sq += d_sq
                if averaging:
                    moved += K.average_row(True, X, i, c, avg_coef, 0, avg_b)
        else:
            norms[0, K.SQ] = sq
            norms[0, K.ABS] = ab
            # (L1's per-coordinate |w| bookkeeping and the average's are
            # the minibatch step's compile-time variants)
            if with_l1 and averaging:
                moved += K.direct_step(X, per_sample, order, start, m, derivs, step, coef,
                                       avg_coef, avg_b, l1, True, dense_grad, norms)
            elif with_l1:
                moved += K.direct_step(X, per_sample, order, start, m, derivs, step, coef,
                                       avg_coef, avg_b, l1, None, dense_grad, norms)
            elif averaging:
                moved += K.direct_step(X, per_sample, order, start, m, derivs, step, coef,
                                       avg_coef, avg_b, None, True, dense_grad, norms)
            else:
                moved += K.direct_step(X, per_sample, order, start, m, derivs, step, coef,
                                       avg_coef, avg_b, None, None, dense_grad, norms)
            sq = norms[0, K.SQ]
            ab = norms[0, K.ABS]
        if fit_intercept:
            s = 0.0
            for r in range(m):
                s += derivs[r, 0]
            b -= eta_b / m * s

        # 4. L1: the cumulative penalty on the weights this batch touched.
        if with_l1 and per_sample is None:
            clock[K.L1_U] += eta * l1
            d_sq, d_ab, d_moved = K.row_l1_penalty(X, order[start], clock[K.L1_U], scale, avg_b,
                                                   coef, l1_applied, avg_coef, 0)
            sq += d_sq
            ab += d_ab
            moved += d_moved
        elif with_l1:
            clock[K.SCALE] = scale
            clock[K.AVG_B] = avg_b
            clock[K.AVG_CHECK] = moved
            norms[0, K.SQ] = sq
            norms[0, K.ABS] = ab
            K.l1_penalty(l1, coef, l1_applied, avg_coef, clock, norms, touched, n_touched, eta)
            moved = clock[K.AVG_CHECK]
            sq = norms[0, K.SQ]
            ab = norms[0, K.ABS]
            for s_ in range(n_touched):
                slot[touched[s_]] = -1

        # 5. Averaging: this step's weights join the running sum.
        if averaging and t + m - 1 >= average_start:
            avg_b, avg_n, inv = K.average_step(avg_b, avg_n, scale, 1.0)
            avg_ib = K.average_intercept(avg_ib, b, inv)

        t += m

    clock[K.T] = t
    clock[K.SCALE] = scale
    clock[K.AVG_B] = avg_b
    clock[K.AVG_N] = avg_n
    clock[K.AVG_CHECK] = moved
    intercept[0] = b
    if averaging:
        avg_intercept[0] = avg_ib
    norms[0, K.SQ] = sq
    norms[0, K.ABS] = ab
    objective[:, :] = 0.0
    objective[0, 0] = total
    objective[1, 0] = counted_sum
