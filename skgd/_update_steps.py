"""The gradient steps of a minibatch, in the spirit of optax's transformations:
clip by value, clip by global norm, the step along the batch gradient
(plain or with momentum), and the direct step of a pass that buffers no
gradient. A step that is off arrives as ``None`` and compiles to nothing.
"""

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import _CALL, _INLINE, _JIT
from ._lazy_weights import average_row, recount_norms
from ._rows import _dense, row_update
from ._schedule_kernels import auto_momentum
from ._slots import ABS, AVG_B, AVG_CHECK, SCALE, SQ


def clip_by_value(grad, grad_b, n_touched, limit):
    """Step: clip each gradient component to ``[-limit, limit]``.

    Gradient clipping by value (Mikolov 2012, Pascanu et al. 2013).
    """


@overload(clip_by_value, jit_options=_JIT)
def _clip_by_value(grad, grad_b, n_touched, limit):
    if isinstance(limit, types.NoneType):
        return lambda grad, grad_b, n_touched, limit: None

    def impl(grad, grad_b, n_touched, limit):
        for k in range(grad.shape[0]):
            for s in range(n_touched):
                grad[k, s] = min(max(grad[k, s], -limit), limit)
            grad_b[k] = min(max(grad_b[k], -limit), limit)

    return impl


def clip_by_global_norm(grad, grad_b, n_touched, max_norm):
    """Step: the factor that rescales the whole gradient to an L2 norm of at
    most ``max_norm`` (1 when off).

    Gradient clipping by norm (Pascanu, Mikolov & Bengio 2013). The norm is
    taken over all outputs and the intercepts together.
    """


@overload(clip_by_global_norm, jit_options=_JIT)
def _clip_by_global_norm(grad, grad_b, n_touched, max_norm):
    if isinstance(max_norm, types.NoneType):
        return lambda grad, grad_b, n_touched, max_norm: 1.0

    def impl(grad, grad_b, n_touched, max_norm):
        sq = 0.0
        for k in range(grad.shape[0]):
            for s in range(n_touched):
                sq += grad[k, s] * grad[k, s]
            sq += grad_b[k] * grad_b[k]
        norm = np.sqrt(sq)
        if norm > max_norm:
            return max_norm / norm
        return 1.0

    return impl


def apply_gradient(momentum, mu, coef, intercept, avg_coef, velocity, velocity_b, grad, grad_b,
                   touched, n_touched, slot, eta, eta_b, clock, norms):
    """Step: move the weights along the batch gradient ``grad`` (compact,
    ``grad[:, s]`` for column ``touched[s]``), plainly or with momentum
    ``mu`` (see :func:`momentum_coefficient`)."""


@overload(apply_gradient, jit_options=_JIT)
def _apply_gradient(momentum, mu, coef, intercept, avg_coef, velocity, velocity_b, grad, grad_b,
                    touched, n_touched, slot, eta, eta_b, clock, norms):
    if isinstance(momentum, types.NoneType):

        def impl(momentum, mu, coef, intercept, avg_coef, velocity, velocity_b, grad, grad_b,
                 touched, n_touched, slot, eta, eta_b, clock, norms):
            scale = clock[SCALE]
            avg_b = clock[AVG_B]
            c = -eta / scale
            moved = 0.0
            for k in range(coef.shape[0]):
                dsq = 0.0
                dab = 0.0
                for s in range(n_touched):
                    j = touched[s]
                    delta = c * grad[k, s]
                    old = coef[k, j]
                    new = old + delta
                    coef[k, j] = new
                    dsq += new * new - old * old
                    dab += abs(new) - abs(old)
                    if avg_b != 0.0:
                        avg_coef[k, j] -= avg_b * delta
                        moved += abs(avg_b * delta)
                intercept[k] -= eta_b * grad_b[k]
                norms[k, SQ] += dsq
                norms[k, ABS] += dab
            clock[AVG_CHECK] += moved

        return impl

    def impl(momentum, mu, coef, intercept, avg_coef, velocity, velocity_b, grad, grad_b,
             touched, n_touched, slot, eta, eta_b, clock, norms):
        # Heavy-ball momentum (Polyak 1964) or Nesterov's form (Sutskever et
        # al. 2013, as PyTorch writes it): v = mu * v - eta * g, then
        # w += v (heavy ball) or w += mu * v - eta * g (Nesterov). L2 is
        # decoupled weight decay (through the scale), so the velocity carries
        # the loss gradient only. Every weight moves with its velocity: a
        # step costs a pass over all weights, even on sparse data.
        nesterov = momentum[1]
        scale = clock[SCALE]
        avg_b = clock[AVG_B]
        moved = 0.0
        for k in range(coef.shape[0]):
            for j in range(coef.shape[1]):
                s = slot[j]
                g = grad[k, s] if s >= 0 else 0.0
                v = mu * velocity[k, j] - eta * g
                velocity[k, j] = v
                delta = mu * v - eta * g if nesterov else v
                if delta != 0.0:
                    delta /= scale
                    coef[k, j] += delta
                    if avg_b != 0.0:
                        avg_coef[k, j] -= avg_b * delta
                        moved += abs(avg_b * delta)
            g = grad_b[k]
            v = mu * velocity_b[k] - eta_b * g
            velocity_b[k] = v
            intercept[k] += mu * v - eta_b * g if nesterov else v
        clock[AVG_CHECK] += moved
        recount_norms(coef, norms)

    return impl


def momentum_coefficient(momentum, auto, eta, wanted):
    """The momentum of this step: the rule's, or with 'auto' (whose rule
    carries the most it may use) what :func:`auto_momentum` gives; 0 when
    momentum is off."""


@overload(momentum_coefficient, jit_options=_JIT)
def _momentum_coefficient(momentum, auto, eta, wanted):
    if isinstance(momentum, types.NoneType):
        return lambda momentum, auto, eta, wanted: 0.0

    def impl(momentum, auto, eta, wanted):
        if auto:
            return auto_momentum(momentum[0], eta, wanted)
        return momentum[0]

    return impl



def direct_step(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                average, dense_grad, norms):
    """Step 3 without clipping or momentum: ``W[k] += step * derivs[r, k] *
    X[row r]`` over the batch, each output's ``norms`` kept up to date.
    Returns the sum of the changes to the averaging sums.

    Sparse rows, and per-sample steps, update the weights row by row
    (:func:`step_rows`: each touches its own columns). A dense minibatch
    first sums its rows' contributions into one gradient vector
    (:func:`step_dense_batch`).

    Only the row-by-row step without averaging is inlined into the pass,
    where it runs once per row at batch_size=1 (see ``_INLINE``). The other
    cases stay calls: inlined, their products could be regrouped with the
    caller's under ``reassoc``, and that did change the results of averaged
    runs and of dense minibatches (the cases inlined here keep them).
    """


def dense_gradient_buffer(X, per_sample, n_out):
    """The gradient vector a dense minibatch sums into (empty otherwise)."""


def _dense_batches(X, per_sample):
    return _dense(X) and not isinstance(per_sample, types.NoneType)


@overload(dense_gradient_buffer, jit_options=_JIT)
def _dense_gradient_buffer(X, per_sample, n_out):
    if _dense_batches(X, per_sample):
        return lambda X, per_sample, n_out: np.zeros((n_out, X[0].shape[1]))
    return lambda X, per_sample, n_out: np.zeros((n_out, 0))


def _step_rows(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
               average, dense_grad, norms):
    moved = 0.0
    for r in range(m):
        i = order[start + r]
        for k in range(coef.shape[0]):
            c = step * derivs[r, k]
            if c != 0.0:
                d_sq, d_ab = row_update(X, i, c, coef, k, l1)
                norms[k, SQ] += d_sq
                norms[k, ABS] += d_ab
                moved += average_row(average, X, i, c, avg_coef, k, avg_b)
    return moved


def step_rows(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
              average, dense_grad, norms):
    """:func:`direct_step` row by row, as a call."""


@overload(step_rows, jit_options=_CALL)
def _step_rows_call(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                    average, dense_grad, norms):
    return _step_rows


def step_dense_batch(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                     average, dense_grad, norms):
    """:func:`direct_step` of a dense minibatch, as a call: sums its rows'
    contributions into one gradient vector, reading each row from cache
    where its score was just computed, and adds it to the weights once."""


@overload(step_dense_batch, jit_options=_CALL)
def _step_dense_batch(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                      average, dense_grad, norms):
    track_abs = not isinstance(l1, types.NoneType)
    averaging = not isinstance(average, types.NoneType)

    def impl(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
             average, dense_grad, norms):
        x = X[0]
        d = x.shape[1]
        moved = 0.0
        for k in range(coef.shape[0]):
            dsq = 0.0
            dab = 0.0
            for j in range(d):
                dense_grad[k, j] = 0.0
            for r in range(m):
                c = step * derivs[r, k]
                if c != 0.0:
                    i = order[start + r]
                    for j in range(d):
                        dense_grad[k, j] += c * x[i, j]
            for j in range(d):
                delta = dense_grad[k, j]
                old = coef[k, j]
                new = old + delta
                coef[k, j] = new
                dsq += new * new - old * old
                if track_abs:
                    dab += abs(new) - abs(old)
                if averaging and avg_b != 0.0:
                    avg_coef[k, j] -= avg_b * delta
                    moved += abs(avg_b * delta)
            norms[k, SQ] += dsq
            norms[k, ABS] += dab
        return moved

    return impl


@overload(direct_step, jit_options=_INLINE)
def _direct_step(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                 average, dense_grad, norms):
    if _dense_batches(X, per_sample):
        return (lambda X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                average, dense_grad, norms:
                step_dense_batch(X, per_sample, order, start, m, derivs, step, coef, avg_coef,
                                 avg_b, l1, average, dense_grad, norms))
    if not isinstance(average, types.NoneType):
        return (lambda X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                average, dense_grad, norms:
                step_rows(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b,
                          l1, average, dense_grad, norms))
    return _step_rows
