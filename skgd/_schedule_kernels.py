"""The compiled step arithmetic of the learning-rate schedules (their names,
codes and documentation: ``skgd.schedules``): the per-sample rate, the step
caps, a minibatch's step sizes, passive-aggressive steps, the rate and
momentum of 'auto' (DoG), and what the steps do to the lazy L2 scale.
"""

import numba
import numpy as np

from ._jit import _JIT
from ._slots import (
    BOUND,
    GRAD_SQ,
    H_ALPHA,
    H_BATCH_SIZE,
    H_CAP_FLOOR,
    H_CURV_B_FULL,
    H_CURV_B_MAX,
    H_CURV_FULL,
    H_CURV_MAX,
    H_ETA0,
    H_INTERCEPT_DECAY,
    H_L2,
    H_ONLINE,
    H_OPTIMAL_INIT,
    H_POWER_T,
    H_ROW_SQ,
    H_SCALE_MIN,
    H_SCHEDULE,
    REACH,
    SCALE,
    SQ,
    T,
)
from .schedules import AUTO, INVSCALING, OPTIMAL, PA1


@numba.njit(**_JIT)
def passive_aggressive_step(schedule, c, loss, sq_norm):
    """The step ``tau`` of a passive-aggressive update (Crammer et al. 2006)
    with aggressiveness ``c`` for a row of squared norm ``sq_norm`` and
    loss ``loss``: PA-I ``min(c, loss / sq_norm)`` (0 for an empty row,
    which scikit-learn skips), PA-II ``loss / (sq_norm + 1 / (2 c))``."""
    if schedule == PA1:
        return min(c, loss / sq_norm) if sq_norm > 0.0 else 0.0
    return loss / (sq_norm + 0.5 / c)


@numba.njit(**_JIT)
def schedule_params(hyper):
    """The schedule's fields of ``hyper`` as a tuple (kept in registers by a
    pass: ``(schedule, alpha, eta0, power_t, optimal_init)``)."""
    return (hyper[H_SCHEDULE], hyper[H_ALPHA], hyper[H_ETA0], hyper[H_POWER_T],
            hyper[H_OPTIMAL_INIT])


@numba.njit(**_JIT)
def schedule_rate(params, t):
    """Per-sample learning rate at sample count ``t`` (see skgd.schedules) of
    the :func:`schedule_params` ``params``."""
    schedule, alpha, eta0, power_t, optimal_init = params
    if schedule == OPTIMAL:
        return 1.0 / (alpha * (optimal_init + t - 1.0))
    if schedule == INVSCALING:
        return eta0 / t ** power_t
    if schedule == AUTO:  # set per batch by the pass (auto_rate); unknown here: the cap's
        return np.inf
    return eta0  # constant, adaptive (the driver lowers eta0), PA (decay rate)


@numba.njit(**_JIT)
def learning_rate(hyper, t):
    """Per-sample learning rate at sample count ``t`` (see skgd.schedules)."""
    return schedule_rate(schedule_params(hyper), t)


@numba.njit(**_JIT)
def step_cap(curv_full, curv_max, m):
    """The longest step a batch of ``m`` rows may take, ``1 / (curv_full +
    curv_max / m)``; ``inf`` (no cap) when ``curv_max`` is 0."""
    if curv_max > 0.0:
        return 1.0 / (curv_full + curv_max / m)
    return np.inf


@numba.njit(**_JIT)
def step_caps(hyper, m, clip_factor=1.0):
    """The :func:`step_cap` of the weights and of the intercepts for a batch of
    ``m`` rows whose gradient was clipped by ``clip_factor``."""
    return (step_cap(clip_factor * hyper[H_CURV_FULL], clip_factor * hyper[H_CURV_MAX], m),
            step_cap(clip_factor * hyper[H_CURV_B_FULL], clip_factor * hyper[H_CURV_B_MAX], m))


@numba.njit(**_JIT)
def minibatch_step(rate, m, cap, floor):
    """Step size of a batch of ``m`` rows: ``m * rate`` (linear scaling),
    at most ``cap`` (:func:`step_cap`); with ``floor``, a capped step is
    never below one per-sample step ``rate``."""
    eta = m * rate
    if cap < np.inf:
        eta = min(eta, cap)
        if floor:
            eta = max(eta, rate)
    return eta


@numba.njit(**_JIT)
def batch_steps(rate, m, caps, floor, intercept_decay):
    """Step sizes ``(eta, eta_b)`` of the weights and the intercepts of a
    batch of ``m`` rows at the per-sample ``rate``, under ``caps``
    (:func:`step_caps`), the intercepts' damped by ``intercept_decay``."""
    return (minibatch_step(rate, m, caps[0], floor),
            minibatch_step(rate, m, caps[1], floor) * intercept_decay)


@numba.njit(**_JIT)
def step_sizes(hyper, t, m, clip_factor=1.0, rate=-1.0):
    """Step sizes ``(eta, eta_b)`` of the weights and the intercepts for a
    batch of ``m`` rows starting at sample count ``t``: ``m`` per-sample
    steps at the batch's middle sample, each block under its own cap
    (skgd._smoothness), the intercepts' then damped on sparse data
    (``H_INTERCEPT_DECAY``). A gradient clipped by ``clip_factor`` is that
    of the loss scaled by it, whose curvature is scaled alike: the caps
    widen by ``1 / clip_factor`` (else clipping and the cap would both
    shrink the same step). ``rate``, when >= 0, is the per-sample rate
    ('auto' measures it per batch: :func:`auto_rate`)."""
    if rate < 0.0:
        rate = learning_rate(hyper, t + 0.5 * (m - 1))
    return batch_steps(rate, m, step_caps(hyper, m, clip_factor), hyper[H_CAP_FLOOR] != 0.0,
                       hyper[H_INTERCEPT_DECAY])


@numba.njit(**_JIT)
def auto_step_sizes(hyper, t, m, batch, rate, clip_factor=1.0):
    """Step sizes of 'auto' for a batch of ``m`` rows at its per-sample
    ``rate``: ``(eta, eta_b, full_eta)``, where ``full_eta`` is the weights'
    step of a full batch of ``batch`` rows (:func:`step_sizes`). A shorter
    batch (the rows left over at the end of a pass) takes ``m / batch`` of a
    full batch's steps, and its momentum is a full batch's (the caller's
    :func:`auto_momentum` of ``full_eta``).

    Under the cap a full batch steps less per row than its rate; the short
    batch, below the cap, would step its few rows many times further (10x
    on digits at ``batch_size=256``), a kick of noise every pass. And by its
    own step it would want no momentum and wipe the velocity each pass: on
    digits at 256, 7 batches a pass, the momentum never built up.
    """
    eta, eta_b = step_sizes(hyper, t, batch, clip_factor, rate)
    if m == batch:
        return eta, eta_b, eta
    return eta * m / batch, eta_b * m / batch, eta


# 'auto' starts from a step this far from the origin (DoG's r_epsilon); its
# steps then grow geometrically while the weights move.
AUTO_FIRST_REACH = 1e-4


@numba.njit(**_JIT)
def weight_norm_bound(hyper, objective):
    """A bound on the norm of the optimum's weights, from the objective at
    the starting weights ``w0``: with an L2 penalty of strength ``l2``,
    ``l2 / 2 * |w*|^2 <= F(w*) <= F(w0)``, so ``|w*| <= sqrt(2 F(w0) /
    l2)``. ``F(w0)`` is the first batch's mean objective (``objective`` as
    :func:`sgd_pass` sums it; any later weights also give a bound). 0
    without an L2 penalty (no bound)."""
    f = 0.0
    for k in range(objective.shape[1]):
        if objective[1, k] > 0.0:
            f += objective[0, k] / objective[1, k]
    l2 = hyper[H_L2]
    return np.sqrt(2.0 * f / l2) if l2 > 0.0 and f > 0.0 else 0.0


@numba.njit(**_JIT)
def auto_rate(clock, hyper, norms, intercept):
    """The per-sample rate of 'auto': distance over gradients (DoG; Ivgi,
    Hinder & Carmon 2023), ``r / sqrt(G)``, where ``r`` is the farthest the
    weights (with the intercepts) have been from the origin and ``G`` the
    sum over the rows seen of their squared gradient norms,
    ``s_i * |dloss_i|^2 * (|x|^2 + 1)`` with ``|x|^2`` the data's mean
    (``H_ROW_SQ``). Large while the weights travel, it falls as ``1 /
    sqrt(t)`` where gradients stay noisy and stays large where they vanish,
    with nothing to tune. 0 before any gradient (nothing to step along).

    In a ``partial_fit`` pass (``H_ONLINE``) ``r`` is at least ``BOUND``
    (:func:`weight_norm_bound`): a stream sees each row once, and on sparse
    rows the weights' steps scatter over many columns, so the distance
    grows only as ``sqrt(t)``, too slowly for DoG to find the optimum's in
    one pass. Online gradient descent against the comparators within that
    bound steps ``r / sqrt(G)`` with ``r`` the bound (Zinkevich 2003; the
    step cap still holds it). A fit revisits its rows, and DoG's measured
    distance, which is smaller, keeps its late steps quiet."""
    scale = clock[SCALE]
    dist2 = 0.0
    for k in range(norms.shape[0]):
        dist2 += scale * scale * norms[k, SQ] + intercept[k] * intercept[k]
    reach = max(clock[REACH], np.sqrt(max(dist2, 0.0)), AUTO_FIRST_REACH)
    clock[REACH] = reach
    if hyper[H_ONLINE] != 0.0:
        reach = max(reach, clock[BOUND])
    g = clock[GRAD_SQ] * hyper[H_ROW_SQ]
    return reach / np.sqrt(g) if g > 0.0 else 0.0


@numba.njit(**_JIT)
def auto_momentum(mu_max, eta, wanted):
    """Momentum of 'auto' when the cap shortens the step it wants: heavy
    ball with ``mu = 1 - eta / wanted`` (at most ``mu_max``), whose long-run
    step ``eta / (1 - mu)`` is the one wanted. Large batches with quiet
    gradients are held by the cap, not by noise; momentum lets them travel
    (Polyak 1964) without a step beyond the stability limit."""
    if not wanted > eta:
        return 0.0
    return min(mu_max, 1.0 - eta / wanted)


@numba.njit(**_JIT)
def decayed_scale(scale, eta, l2):
    """The lazy scale after one step of L2 weight decay."""
    return scale * max(0.0, 1.0 - eta * l2)


@numba.njit(**_JIT)
def pass_would_fold(clock, hyper, n_rows, clipped):
    """Whether a pass of ``n_rows`` from this clock folds the lazy scale
    (it depends on the schedule only, not on the data): such a pass changes
    every weight, so its undo needs a full copy rather than a journal.
    With global-norm clipping (``clipped``) a step may widen its cap up to
    no cap at all (see :func:`step_sizes`), so that is assumed."""
    l2 = hyper[H_L2]
    if l2 <= 0.0:
        return False
    batch = np.int64(hyper[H_BATCH_SIZE])
    scale = clock[SCALE]
    t = clock[T]
    for start in range(0, n_rows, batch):
        m = min(batch, n_rows - start)
        eta, _ = step_sizes(hyper, t, m, 0.0 if clipped else 1.0)
        scale = decayed_scale(scale, eta, l2)
        # a margin: the pass itself must never meet a fold it was not
        # promised, whatever the rounding
        if scale < 2.0 * hyper[H_SCALE_MIN]:
            return True
        t += m
    return False
