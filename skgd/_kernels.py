"""The compiled minibatch SGD pass (numba).

One call of :func:`sgd_pass` runs every minibatch of one epoch (or of one
``partial_fit`` chunk): scores, loss derivatives, weight decay, gradient
clipping, the gradient step, the L1 penalty, averaging and the clock. No
Python runs per minibatch.

Data layouts
------------
``X`` is a *dataset tuple*: ``(array2d,)`` for dense C-ordered rows, or
``(data, indices, indptr)`` for CSR (int32 or int64 indices). The row helpers
below are ``overload``-ed on that tuple, so one kernel source serves both.

Weights
-------
``coef`` has shape ``(n_outputs, n_features)``: one row per output (one per
class for one-vs-rest, one for binary and regression problems), so all
classes train in the same pass. The real weights are ``scale * coef``:
L2 weight decay multiplies ``scale`` only, which keeps a sparse step as cheap
as the non-zeros it touches (Shalev-Shwartz et al. 2007, Bottou 2010).

Averaging (ASGD, Polyak & Juditsky 1992) is lazy too: the sum of the weights
since averaging began is ``avg_coef + clock[AVG_B] * coef``. A step that
changes ``coef[k, j]`` by ``delta`` subtracts ``clock[AVG_B] * delta`` from
``avg_coef[k, j]``, and then ``clock[AVG_B]`` grows by ``scale``.

L1 uses the cumulative penalty of Tsuruoka, Tsujii & Ananiadou (2009): each
touched weight is pulled towards zero by the penalty it has not received yet,
clipped at zero, which produces exact zeros.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .schedules import INVSCALING, OPTIMAL

# Slots of the float64 ``clock`` array (the engine's scalar state).
T = 0  # samples seen + 1 (scikit-learn's ``t_``)
SCALE = 1  # real weights = SCALE * coef
L1_U = 2  # total L1 penalty each weight could have received so far
AVG_B = 3  # coefficient of coef in the lazy sum of averaged weights
AVG_N = 4  # number of steps averaged so far
PASSES = 5  # passes run so far (seeds each pass's shuffle)
N_CLOCK = 6

# The hyper-parameters travel as one float64 array (cheap for numba to
# dispatch on); these are its slots, in order.
HYPER_FIELDS = (
    "schedule",  # a code from skgd.schedules
    "alpha",  # used by the 'optimal' schedule
    "eta0",  # current base rate (lowered by 'adaptive')
    "power_t",
    "optimal_init",  # offset t0 of 'optimal', already scaled for the batch size
    "l2",  # L2 strength alpha * (1 - l1_ratio), 0 if none
    "l1",  # L1 strength alpha * l1_ratio, 0 if none
    "fit_intercept",  # 1 or 0
    "batch_size",
    "clip_norm",  # 0 = off
    "clip_value",  # 0 = off
    "average_start",  # sample count where averaging starts, 0 = off
    "scale_min",  # when to fold the lazy L2 scale into coef
    "curv_full",  # curvature * lam: weights' step cap 1 / (curv_full + curv_max / m)
    "curv_max",  # curvature * l_max; 0 = no cap (lam, l_max: see make_hyper)
    "curv_b_full",  # the same two for the intercepts' step (skgd._smoothness)
    "curv_b_max",
    "cap_floor",  # 1: the cap never goes below one per-sample step (Loss.per_sample_floor)
    "momentum",  # 0 = plain SGD
    "nesterov",  # 1 = Nesterov's form of momentum
)
(H_SCHEDULE, H_ALPHA, H_ETA0, H_POWER_T, H_OPTIMAL_INIT, H_L2, H_L1, H_FIT_INTERCEPT,
 H_BATCH_SIZE, H_CLIP_NORM, H_CLIP_VALUE, H_AVERAGE_START, H_SCALE_MIN, H_CURV_FULL,
 H_CURV_MAX, H_CURV_B_FULL, H_CURV_B_MAX, H_CAP_FLOOR, H_MOMENTUM,
 H_NESTEROV) = range(len(HYPER_FIELDS))

_JIT = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"})

# Rows are visited in a random order, so each one is a cache miss the CPU
# cannot predict; fetching a few rows ahead overlaps those misses with work.
LOOKAHEAD = 4


# ------------------------------------------------------------ prefetching


@intrinsic
def prefetch(typingctx, arr, idx):
    """Ask the CPU to bring ``arr[idx]`` into cache (``llvm.prefetch``); a hint,
    with no effect on results."""
    if not isinstance(arr, types.Array) or arr.ndim != 1:
        return None
    sig = types.void(arr, types.intp)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


# --------------------------------------------------------------- row helpers


def row_dot(X, i, w):
    """``X[i] . w`` (compiled; dense or CSR)."""


@overload(row_dot, jit_options=_JIT)
def _row_dot(X, i, w):
    if len(X) == 1:

        def impl(X, i, w):
            x = X[0][i]
            s = 0.0
            for j in range(x.shape[0]):
                s += x[j] * w[j]
            return s

    else:

        def impl(X, i, w):
            data, indices, indptr = X
            s = 0.0
            for jj in range(indptr[i], indptr[i + 1]):
                s += data[jj] * w[indices[jj]]
            return s

    return impl


def row_axpy(X, i, c, w):
    """``w += c * X[i]`` (compiled; dense or CSR)."""


@overload(row_axpy, jit_options=_JIT)
def _row_axpy(X, i, c, w):
    if len(X) == 1:

        def impl(X, i, c, w):
            x = X[0][i]
            for j in range(x.shape[0]):
                w[j] += c * x[j]

    else:

        def impl(X, i, c, w):
            data, indices, indptr = X
            for jj in range(indptr[i], indptr[i + 1]):
                w[indices[jj]] += c * data[jj]

    return impl


@intrinsic
def data_pointer(typingctx, arr):
    """The address of ``arr``'s first element, as a typed C pointer (to hand a
    score vector to a compiled multiclass loss)."""
    if not isinstance(arr, types.Array):
        return None
    sig = types.CPointer(arr.dtype)(arr)

    def codegen(context, builder, signature, args):
        return context.make_array(signature.args[0])(context, builder, args[0]).data

    return sig, codegen


def row_derivatives(loss, dloss, loss_params, scores, Y, i, out):
    """Loss of row ``i`` at ``scores`` and its derivatives into ``out``.

    Scalar losses (one-vs-rest, binary, regression) apply to each output with
    its own target ``Y[i, k]``; multiclass losses take the whole score vector
    and the class index ``Y[i, 0]``. Chosen at compile time from the loss's
    function type (see skgd.losses).
    """


@overload(row_derivatives, jit_options=_JIT)
def _row_derivatives(loss, dloss, loss_params, scores, Y, i, out):
    signature = loss.signature() if callable(loss.signature) else loss.signature
    if isinstance(signature.args[0], types.CPointer):

        def impl(loss, dloss, loss_params, scores, Y, i, out):
            k = scores.shape[0]
            y = np.int64(Y[i, 0])
            value = loss(data_pointer(scores), k, y, *loss_params)
            dloss(data_pointer(scores), k, y, data_pointer(out), *loss_params)
            return value

    else:

        def impl(loss, dloss, loss_params, scores, Y, i, out):
            value = 0.0
            for k in range(scores.shape[0]):
                y = Y[i, k]
                value += loss(scores[k], y, *loss_params)
                out[k] = dloss(scores[k], y, *loss_params)
            return value

    return impl


def prefetch_row(X, i):
    """Prefetch row ``i`` (every cache line of it)."""


@overload(prefetch_row, jit_options=_JIT)
def _prefetch_row(X, i):
    if len(X) == 1:

        def impl(X, i):
            x = X[0][i]
            for j in range(0, x.shape[0], 8):
                prefetch(x, j)

    else:

        def impl(X, i):
            data, indices, indptr = X
            lo, hi = indptr[i], indptr[i + 1]
            for jj in range(lo, hi, 8):
                prefetch(data, jj)
                prefetch(indices, jj)

    return impl


def mark_row(X, i, mark, touched, n_touched):
    """Add the columns where row ``i`` is non-zero to ``touched``; return its length.

    Dense and CSR rows mark the same columns, so the lazy L1 penalty and
    clipping act identically on both layouts.
    """


@overload(mark_row, jit_options=_JIT)
def _mark_row(X, i, mark, touched, n_touched):
    if len(X) == 1:

        def impl(X, i, mark, touched, n_touched):
            x = X[0][i]
            for j in range(x.shape[0]):
                if x[j] != 0 and not mark[j]:
                    mark[j] = True
                    touched[n_touched] = j
                    n_touched += 1
            return n_touched

    else:

        def impl(X, i, mark, touched, n_touched):
            data, indices, indptr = X
            for jj in range(indptr[i], indptr[i + 1]):
                j = indices[jj]
                if data[jj] != 0 and not mark[j]:
                    mark[j] = True
                    touched[n_touched] = j
                    n_touched += 1
            return n_touched

    return impl


# ------------------------------------------------------ small transformations
# (Everything sgd_pass calls lives in this file: numba's disk cache only sees
# changes to the file of the function it caches.)


@numba.njit(**_JIT)
def learning_rate(hyper, t):
    """Per-sample learning rate at sample count ``t`` (see skgd.schedules)."""
    schedule = hyper[H_SCHEDULE]
    if schedule == OPTIMAL:
        return 1.0 / (hyper[H_ALPHA] * (hyper[H_OPTIMAL_INIT] + t - 1.0))
    if schedule == INVSCALING:
        return hyper[H_ETA0] / t ** hyper[H_POWER_T]
    return hyper[H_ETA0]  # constant and adaptive (the driver lowers eta0)


@numba.njit(**_JIT)
def minibatch_step(rate, m, curv_full, curv_max, floor):
    """Step size of a batch of ``m`` rows: ``m * rate`` (linear scaling),
    capped at ``1 / (curv_full + curv_max / m)`` when ``curv_max > 0``; with
    ``floor``, never below one per-sample step ``rate``."""
    eta = m * rate
    if curv_max > 0.0:
        eta = min(eta, 1.0 / (curv_full + curv_max / m))
        if floor:
            eta = max(eta, rate)
    return eta


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



@numba.njit(**_JIT)
def fold_scale(coef, clock, avg_coef):
    """Multiply ``scale`` into ``coef`` and reset it to 1.

    Keeps ``coef`` from growing as ``1 / scale``; with averaging on it also
    makes the lazy sum explicit (``avg_coef += AVG_B * coef``), which bounds
    the cancellation in ``avg_coef + AVG_B * coef``.
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


@numba.njit(**_JIT)
def clip_by_value(grad, grad_b, touched, n_touched, limit):
    """Clip each gradient component to ``[-limit, limit]``.

    Gradient clipping by value (Mikolov 2012, Pascanu et al. 2013).
    """
    for k in range(grad.shape[0]):
        for jj in range(n_touched):
            j = touched[jj]
            grad[k, j] = min(max(grad[k, j], -limit), limit)
        grad_b[k] = min(max(grad_b[k], -limit), limit)


@numba.njit(**_JIT)
def clip_by_global_norm(grad, grad_b, touched, n_touched, max_norm):
    """Factor that rescales the whole gradient to L2 norm ``<= max_norm``.

    Gradient clipping by norm (Pascanu, Mikolov & Bengio 2013). The norm is
    taken over all outputs and the intercepts together.
    """
    sq = 0.0
    for k in range(grad.shape[0]):
        for jj in range(n_touched):
            g = grad[k, touched[jj]]
            sq += g * g
        sq += grad_b[k] * grad_b[k]
    norm = np.sqrt(sq)
    if norm > max_norm:
        return max_norm / norm
    return 1.0


@numba.njit(**_JIT)
def l1_cumulative_penalty(coef, l1_applied, avg_coef, clock, touched, n_touched):
    """Apply the pending L1 penalty to the touched weights (Tsuruoka 2009)."""
    u = clock[L1_U]
    scale = clock[SCALE]
    b = clock[AVG_B]
    for jj in range(n_touched):
        j = touched[jj]
        for k in range(coef.shape[0]):
            old = coef[k, j]
            w = scale * old
            z = w
            if w > 0.0:
                w = max(0.0, w - (u + l1_applied[k, j]))
            elif w < 0.0:
                w = min(0.0, w + (u - l1_applied[k, j]))
            l1_applied[k, j] += w - z
            new = w / scale
            coef[k, j] = new
            if b != 0.0:
                avg_coef[k, j] -= b * (new - old)


@numba.njit(**_JIT)
def momentum_step(coef, intercept, avg_coef, velocity, velocity_b, grad, grad_b, eta, eta_b,
                  momentum, nesterov, scale, avg_b):
    """Heavy-ball momentum (Polyak 1964) or Nesterov's form (Sutskever et al.
    2013) on the batch gradient ``grad``, which it also zeroes.

    ``v = momentum * v - eta * g``, then ``w += v`` (heavy ball) or
    ``w += momentum * v - eta * g`` (Nesterov, as PyTorch writes it). L2 is
    decoupled weight decay (through the scale), so the velocity carries the
    loss gradient only. Every weight moves with its velocity, so a step
    costs a pass over all weights, even on sparse data. The intercepts step
    with ``eta_b`` (their own cap).
    """
    for k in range(coef.shape[0]):
        for j in range(coef.shape[1]):
            g = grad[k, j]
            v = momentum * velocity[k, j] - eta * g
            velocity[k, j] = v
            delta = momentum * v - eta * g if nesterov else v
            if delta != 0.0:
                delta /= scale
                coef[k, j] += delta
                if avg_b != 0.0:
                    avg_coef[k, j] -= avg_b * delta
            grad[k, j] = 0.0
        g = grad_b[k]
        v = momentum * velocity_b[k] - eta_b * g
        velocity_b[k] = v
        intercept[k] += momentum * v - eta_b * g if nesterov else v


# ------------------------------------------------------------------- the pass


@numba.njit(**_JIT)
def sgd_pass(
    X,
    Y,
    sample_weight,
    order,
    shuffle_seed,
    coef,
    intercept,
    avg_coef,
    avg_intercept,
    l1_applied,
    velocity,
    velocity_b,
    clock,
    hyper,
    loss,
    dloss,
    loss_params,
):
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
    coef, intercept, avg_coef, avg_intercept, l1_applied, velocity, velocity_b, clock : ndarray
        Engine state, updated in place (see the module docstring).
    hyper : ndarray of float64
        Hyper-parameters, slots ``HYPER_FIELDS``.
    loss, dloss : first-class functions
        Scalar: ``(p, y, *loss_params) -> float`` each. Multiclass:
        ``loss(p*, n_classes, y, *loss_params) -> float`` and
        ``dloss(p*, n_classes, y, out*, *loss_params)`` over pointers.
    loss_params : tuple of float

    Returns
    -------
    weighted_loss : float
        Sum over the rows (and outputs) of ``sample_weight * loss``, each
        taken at the weights before that row's minibatch step.
    raw_loss : float
        The same sum without the sample weights (what scikit-learn's ``tol``
        rule watches).
    """
    n_out, n_features = coef.shape
    n_rows = order.shape[0]
    batch = np.int64(hyper[H_BATCH_SIZE])
    l2 = hyper[H_L2]
    l1 = hyper[H_L1]
    fit_intercept = hyper[H_FIT_INTERCEPT] != 0.0
    clip_norm = hyper[H_CLIP_NORM]
    clip_value = hyper[H_CLIP_VALUE]
    average_start = hyper[H_AVERAGE_START]
    curv_full = hyper[H_CURV_FULL]
    curv_max = hyper[H_CURV_MAX]
    curv_b_full = hyper[H_CURV_B_FULL]
    curv_b_max = hyper[H_CURV_B_MAX]
    cap_floor = hyper[H_CAP_FLOOR] != 0.0
    momentum = hyper[H_MOMENTUM]
    nesterov = hyper[H_NESTEROV] != 0.0
    clipping = clip_norm > 0.0 or clip_value > 0.0
    buffered = clipping or momentum > 0.0  # the batch gradient is formed first
    track = buffered or l1 > 0.0
    averaging = average_start > 0.0

    # scratch: loss derivatives of a batch, and (only when needed) the
    # gradient and the list of columns a batch touches
    derivs = np.empty((batch, n_out))
    scores = np.empty(n_out)
    row_derivs = np.empty(n_out)
    grad = np.zeros((n_out, n_features) if buffered else (0, 0))
    grad_b = np.zeros(n_out)
    mark = np.zeros(n_features if track else 0, dtype=np.bool_)
    touched = np.empty(n_features if track else 0, dtype=np.int64)

    if shuffle_seed >= 0:
        shuffle_in_place(order, shuffle_seed, np.int64(clock[PASSES]))
    clock[PASSES] += 1.0
    weighted_loss = 0.0
    raw_loss = 0.0

    for start in range(0, n_rows, batch):
        m = min(batch, n_rows - start)
        t = clock[T]
        # One step of m samples moves as far as m per-sample steps, capped
        # where a smooth loss would overshoot (skgd._smoothness); the
        # weights and the intercepts have caps of their own.
        rate = learning_rate(hyper, t + 0.5 * (m - 1))
        eta = minibatch_step(rate, m, curv_full, curv_max, cap_floor)
        eta_b = minibatch_step(rate, m, curv_b_full, curv_b_max, cap_floor)

        # 1. Loss derivatives at the current weights.
        scale = clock[SCALE]
        for r in range(m):
            ahead = start + r + LOOKAHEAD
            if ahead < n_rows:
                a = order[ahead]
                prefetch_row(X, a)
                prefetch(sample_weight, a)
                prefetch(Y[a], 0)
            i = order[start + r]
            sw = sample_weight[i]
            for k in range(n_out):
                scores[k] = scale * row_dot(X, i, coef[k]) + intercept[k]
            value = row_derivatives(loss, dloss, loss_params, scores, Y, i, row_derivs)
            raw_loss += value
            weighted_loss += sw * value
            # No clamp on the derivatives (scikit-learn clamps at 1e12): a
            # diverging run must overflow and be reported, not stay finite
            # but huge.
            for k in range(n_out):
                derivs[r, k] = sw * row_derivs[k]

        # 2. L2 weight decay, lazily through the scale.
        if l2 > 0.0:
            clock[SCALE] = scale * max(0.0, 1.0 - eta * l2)
            if clock[SCALE] < hyper[H_SCALE_MIN]:
                fold_scale(coef, clock, avg_coef)
        scale = clock[SCALE]
        avg_b = clock[AVG_B]

        n_touched = 0
        if track:
            for r in range(m):
                n_touched = mark_row(X, order[start + r], mark, touched, n_touched)

        # 3. The gradient step on the mean gradient of the batch.
        step = eta / m
        if buffered:
            for r in range(m):
                i = order[start + r]
                for k in range(n_out):
                    if derivs[r, k] != 0.0:
                        row_axpy(X, i, derivs[r, k] / m, grad[k])
            for k in range(n_out):
                s = 0.0
                for r in range(m):
                    s += derivs[r, k]
                grad_b[k] = s / m if fit_intercept else 0.0
            if clip_value > 0.0:
                clip_by_value(grad, grad_b, touched, n_touched, clip_value)
            factor = 1.0
            if clip_norm > 0.0:
                factor = clip_by_global_norm(grad, grad_b, touched, n_touched, clip_norm)
            if momentum > 0.0:
                momentum_step(coef, intercept, avg_coef, velocity, velocity_b, grad, grad_b,
                              eta * factor, eta_b * factor, momentum, nesterov, scale, avg_b)
            else:
                c = -eta * factor / scale
                for k in range(n_out):
                    for jj in range(n_touched):
                        j = touched[jj]
                        delta = c * grad[k, j]
                        coef[k, j] += delta
                        if avg_b != 0.0:
                            avg_coef[k, j] -= avg_b * delta
                        grad[k, j] = 0.0
                    intercept[k] -= eta_b * factor * grad_b[k]
        else:
            for r in range(m):
                i = order[start + r]
                for k in range(n_out):
                    c = -step * derivs[r, k]
                    if c != 0.0:
                        row_axpy(X, i, c / scale, coef[k])
                        if avg_b != 0.0:
                            row_axpy(X, i, -avg_b * c / scale, avg_coef[k])
            if fit_intercept:
                for k in range(n_out):
                    s = 0.0
                    for r in range(m):
                        s += derivs[r, k]
                    intercept[k] -= eta_b / m * s

        # 4. L1: the cumulative penalty on the weights this batch touched.
        if l1 > 0.0:
            clock[L1_U] += eta * l1
            l1_cumulative_penalty(coef, l1_applied, avg_coef, clock, touched, n_touched)

        if track:
            for jj in range(n_touched):
                mark[touched[jj]] = False

        # 5. Averaging: fold this step's weights into the running sum.
        if averaging and t + m - 1 >= average_start:
            clock[AVG_B] += scale
            clock[AVG_N] += 1.0
            inv = 1.0 / clock[AVG_N]
            for k in range(n_out):
                avg_intercept[k] += (intercept[k] - avg_intercept[k]) * inv

        clock[T] = t + m

    return weighted_loss, raw_loss
