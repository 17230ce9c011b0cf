"""Each learning-rate schedule's step, the step caps, the cap-hold rule and
the fold prediction, one function at a time, against the formulas of
skgd.schedules and skgd._kernels (worked out here by hand, not read back
from the code)."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skgd import MinibatchSGDRegressor
from skgd import _kernels as K
from skgd._engine import Hyper
from skgd._step_caps import cap_holds_decay
from skgd._training import Trainer
from skgd.schedules import (
    ADAPTIVE,
    AUTO,
    CONSTANT,
    INVSCALING,
    OPTIMAL,
    PA1,
    PA2,
    optimal_init,
)


def hyper(**fields):
    """A hyper-parameter array: no cap, no penalty, batches of one, unless
    ``fields`` say otherwise."""
    values = dict.fromkeys(K.HYPER_FIELDS, 0.0)
    values.update(schedule=CONSTANT, eta0=0.1, alpha=1e-4, power_t=0.5, fit_intercept=1.0,
                  batch_size=1.0, scale_min=1e-9, intercept_decay=1.0)
    values.update(fields)
    return np.asarray(Hyper(**values), dtype=np.float64)


# ------------------------------------------------------------ the schedules


@pytest.mark.parametrize("t", [1.0, 2.0, 10.5, 1e6])
def test_each_schedules_per_sample_rate(t):
    eta0, alpha, power_t, t0 = 0.3, 1e-3, 0.25, 417.0

    def rate(schedule):
        return K.learning_rate(hyper(schedule=schedule, eta0=eta0, alpha=alpha,
                                     power_t=power_t, optimal_init=t0), t)

    assert rate(CONSTANT) == eta0
    assert rate(ADAPTIVE) == eta0  # the driver lowers eta0 itself
    assert_allclose(rate(OPTIMAL), 1.0 / (alpha * (t0 + t - 1.0)), rtol=1e-15)
    assert_allclose(rate(INVSCALING), eta0 / t ** power_t, rtol=1e-15)
    # passive-aggressive: eta0 is the rate of the L2 decay; the step is tau
    assert rate(PA1) == rate(PA2) == eta0
    # 'auto' measures its rate per batch: none before that
    assert rate(AUTO) == np.inf
    # the same through the tuple a pass keeps in registers
    params = (float(INVSCALING), alpha, eta0, power_t, t0)
    assert K.schedule_rate(params, t) == rate(INVSCALING)


def test_optimal_offset_is_bottous_heuristic():
    # typw = sqrt(1 / sqrt(alpha)) = 10 for alpha = 1e-4; hinge's derivative
    # at -typw is -1, so eta0 = typw and t0 = 1 / (typw * alpha) = 1000
    assert_allclose(optimal_init(1e-4, lambda p, y: -1.0), 1000.0, rtol=1e-15)
    # a derivative of 4 there divides the first step by 4: t0 four times larger
    assert_allclose(optimal_init(1e-4, lambda p, y: 4.0), 4000.0, rtol=1e-15)
    # the first rate of 'optimal' is then eta0 = typw / max(1, dloss)
    t0 = optimal_init(1e-2, lambda p, y: -1.0)
    assert_allclose(K.learning_rate(hyper(schedule=OPTIMAL, alpha=1e-2, optimal_init=t0), 1.0),
                    math.sqrt(1.0 / math.sqrt(1e-2)), rtol=1e-14)


@pytest.mark.parametrize("loss, sq_norm, c", [(0.5, 2.0, 1.0), (3.0, 2.0, 1.0),
                                              (3.0, 0.5, 0.01), (0.0, 4.0, 1.0)])
def test_passive_aggressive_steps(loss, sq_norm, c):
    """PA-I ``min(C, loss / |x|^2)``, PA-II ``loss / (|x|^2 + 1 / (2 C))``
    (Crammer et al. 2006, eqs. 8 and 9)."""
    assert K.passive_aggressive_step(PA1, c, loss, sq_norm) == min(c, loss / sq_norm)
    assert_allclose(K.passive_aggressive_step(PA2, c, loss, sq_norm),
                    loss / (sq_norm + 1.0 / (2.0 * c)), rtol=1e-15)


def test_passive_aggressive_skips_an_empty_row():
    assert K.passive_aggressive_step(PA1, 1.0, 2.0, 0.0) == 0.0
    # PA-II's step stays finite: the 1 / (2 C) term
    assert K.passive_aggressive_step(PA2, 0.5, 2.0, 0.0) == 2.0


# ---------------------------------------------------------- minibatch steps


def test_a_minibatch_steps_m_per_sample_steps_at_its_middle_sample():
    h = hyper(schedule=INVSCALING, eta0=0.5, power_t=0.5, batch_size=4.0)
    t, m = 9.0, 4
    eta, eta_b = K.step_sizes(h, t, m)
    # rows t .. t + 3: the middle sample is t + 1.5
    assert_allclose(eta, m * 0.5 / (t + 1.5) ** 0.5, rtol=1e-15)
    assert eta_b == eta


def test_the_intercepts_step_is_damped_on_sparse_data():
    eta, eta_b = K.step_sizes(hyper(intercept_decay=0.01, batch_size=8.0), 1.0, 8)
    assert_allclose((eta, eta_b), (8 * 0.1, 8 * 0.1 * 0.01), rtol=1e-15)


def test_step_cap_of_a_batch():
    # 1 / (curvature * (lam + l_max / m))
    assert_allclose(K.step_cap(2.0, 12.0, 3), 1.0 / (2.0 + 4.0), rtol=1e-15)
    assert K.step_cap(2.0, 0.0, 3) == np.inf  # no l_max: no cap


@pytest.mark.parametrize("floor", [False, True])
def test_a_capped_step_and_its_floor(floor):
    rate, m = 0.1, 10
    # no cap: linear scaling
    assert_allclose(K.minibatch_step(rate, m, np.inf, floor), 1.0, rtol=1e-15)
    # a cap above m * rate does not bind
    assert_allclose(K.minibatch_step(rate, m, 5.0, floor), 1.0, rtol=1e-15)
    # a cap between rate and m * rate is the step
    assert K.minibatch_step(rate, m, 0.4, floor) == 0.4
    # a cap below one per-sample step: the floor keeps one per-sample step
    assert K.minibatch_step(rate, m, 0.02, floor) == (rate if floor else 0.02)


def test_each_block_has_its_own_cap():
    # weights: 1 / (1 + 8 / 4) = 1/3; intercepts: 1 / (0.5 + 2 / 4) = 1
    h = hyper(eta0=1.0, batch_size=4.0, curv_full=1.0, curv_max=8.0, curv_b_full=0.5,
              curv_b_max=2.0)
    assert_allclose(K.step_sizes(h, 1.0, 4), (1.0 / 3.0, 1.0), rtol=1e-15)


def test_a_clipped_gradient_widens_the_caps():
    """A gradient scaled by f < 1 is that of a loss whose curvature is f
    times the loss's: the caps become 1 / (f * curvature * L)."""
    h = hyper(eta0=1.0, batch_size=4.0, curv_full=1.0, curv_max=8.0, curv_b_full=0.5,
              curv_b_max=2.0)
    assert_allclose(K.step_sizes(h, 1.0, 4, 0.25), (4.0 / 3.0, 4.0), rtol=1e-15)
    # widened beyond what the schedule asks for (m * eta0 = 4): the schedule's
    assert_allclose(K.step_sizes(h, 1.0, 4, 0.1), (10.0 / 3.0, 4.0), rtol=1e-15)


def test_auto_short_batch_takes_its_share_of_a_full_batchs_step():
    h = hyper(schedule=AUTO, batch_size=8.0, curv_full=1.0, curv_max=8.0, curv_b_full=1.0,
              curv_b_max=8.0)
    rate = 0.5  # wants 8 * 0.5 = 4 a full batch; the cap is 1 / (1 + 1) = 0.5
    assert_allclose(K.auto_step_sizes(h, 1.0, 8, 8, rate), (0.5, 0.5, 0.5), rtol=1e-15)
    # 3 rows left over: 3/8 of the full batch's capped step; its momentum is
    # the full batch's (the third value)
    assert_allclose(K.auto_step_sizes(h, 1.0, 3, 8, rate), (0.5 * 3 / 8, 0.5 * 3 / 8, 0.5),
                    rtol=1e-15)


def test_auto_rate_is_distance_over_gradients():
    h = hyper(schedule=AUTO, row_sq=2.0)
    clock = np.zeros(K.N_CLOCK)
    clock[K.SCALE] = 0.5
    norms = np.array([[16.0, 0.0]])  # |coef|^2: real weights 0.5 * 4 = 2 in norm
    intercept = np.array([1.5])
    # no gradient yet: no step
    assert K.auto_rate(clock.copy(), h, norms, intercept) == 0.0
    clock[K.GRAD_SQ] = 8.0
    # r = |(w, b)| = sqrt(2^2 + 1.5^2) = 2.5; G = 8 * 2: rate 2.5 / 4
    c = clock.copy()
    assert_allclose(K.auto_rate(c, h, norms, intercept), 2.5 / 4.0, rtol=1e-15)
    assert_allclose(c[K.REACH], 2.5, rtol=1e-15)
    # r is the farthest so far, not the current distance
    c[K.REACH] = 10.0
    assert_allclose(K.auto_rate(c, h, norms, intercept), 10.0 / 4.0, rtol=1e-15)
    # at the origin: DoG's first reach
    c = clock.copy()
    assert_allclose(K.auto_rate(c, h, np.zeros((1, 2)), np.zeros(1)),
                    K.AUTO_FIRST_REACH / 4.0, rtol=1e-15)
    # a stream (online) steps as far as the bound on the optimum's norm
    c = clock.copy()
    c[K.BOUND] = 20.0
    online = hyper(schedule=AUTO, row_sq=2.0, online=1.0)
    assert_allclose(K.auto_rate(c, online, norms, intercept), 20.0 / 4.0, rtol=1e-15)
    assert_allclose(c[K.REACH], 2.5, rtol=1e-15)  # the bound is not a distance travelled


def test_weight_norm_bound_from_the_first_objective():
    # F(w0) = 6 / 3 (output 0) + 4 / 2 (output 1) = 4; |w*| <= sqrt(2 * 4 / 0.02) = 20
    objective = np.array([[6.0, 4.0], [3.0, 2.0], [0.0, 0.0]])
    assert_allclose(K.weight_norm_bound(hyper(l2=0.02), objective), 20.0, rtol=1e-15)
    assert K.weight_norm_bound(hyper(l2=0.0), objective) == 0.0  # no penalty: no bound


@pytest.mark.parametrize("eta, wanted, expected", [
    (1.0, 4.0, 0.75),  # long-run step eta / (1 - mu) = 4 = wanted
    (1.0, 100.0, 0.95),  # at most mu_max
    (1.0, 1.0, 0.0),  # the cap does not shorten the step: no momentum
    (2.0, 1.0, 0.0),
])
def test_auto_momentum_makes_up_the_capped_step(eta, wanted, expected):
    assert_allclose(K.auto_momentum(0.95, eta, wanted), expected, rtol=1e-15)


def test_l2_decay_and_averaging_arithmetic():
    assert_allclose(K.decayed_scale(0.5, 0.1, 2.0), 0.5 * 0.8, rtol=1e-15)
    assert K.decayed_scale(0.5, 1.0, 2.0) == 0.0  # a step past zero stops at zero
    # a step of weight 3 joins a sum of weight 2: AVG_B grows by 3 * scale
    avg_b, avg_n, share = K.average_step(1.0, 2.0, 0.5, 3.0)
    assert_allclose((avg_b, avg_n, share), (2.5, 5.0, 0.6), rtol=1e-15)
    # the running average of the intercept moves by that share
    assert_allclose(K.average_intercept(1.0, 6.0, 0.6), 1.0 + 5.0 * 0.6, rtol=1e-15)


# -------------------------------------------------------- the cap-hold rule


def _optimal_capped(batch_size=1.0, floor=False):
    """'optimal' with alpha 0.01 and t0 100: rate 1 / (0.01 (99 + t)), 1 at
    t = 1; the weights' cap 1 / (10 / m) (curv_max 10)."""
    return hyper(schedule=OPTIMAL, alpha=0.01, optimal_init=100.0, batch_size=batch_size,
                 curv_max=10.0, cap_floor=float(floor))


def test_the_cap_holds_optimal_until_its_rate_falls_below_it():
    h = _optimal_capped()
    # cap 0.1 < rate 1: held; the rate reaches 0.1 at 0.01 (99 + t) = 10: t = 901
    assert cap_holds_decay(h, 1.0, 901.0)
    assert not cap_holds_decay(h, 1.0, 900.0)  # held the whole run: counted as usual
    assert cap_holds_decay(h, 800.0, 1e9)
    assert not cap_holds_decay(h, 902.0, 1e9)  # caught up: the cap no longer holds


def test_the_cap_holds_a_minibatchs_per_sample_step():
    # m = 4: cap 1 / (10 / 4) = 0.4 for the whole batch, i.e. below one
    # per-sample step while the rate at the middle sample t + 1.5 exceeds
    # 0.4: 0.01 (99 + t + 1.5) < 2.5, t < 149.5
    h = _optimal_capped(batch_size=4.0)
    assert cap_holds_decay(h, 149.0, 1e9)
    assert not cap_holds_decay(h, 150.0, 1e9)
    # it catches up at t = 149.5: within a run that ends there, not before
    assert cap_holds_decay(h, 1.0, 149.5)
    assert not cap_holds_decay(h, 1.0, 149.0)


def test_the_cap_holds_invscaling_until_its_rate_falls_below_it():
    # eta0 / sqrt(t) <= 0.1 from t = 100 (eta0 = 1, cap 0.1)
    h = hyper(schedule=INVSCALING, eta0=1.0, power_t=0.5, curv_max=10.0)
    assert cap_holds_decay(h, 1.0, 100.0)
    assert not cap_holds_decay(h, 1.0, 99.0)
    # power_t = 0: the rate never falls
    assert not cap_holds_decay(hyper(schedule=INVSCALING, eta0=1.0, power_t=0.0,
                                      curv_max=10.0), 1.0, 1e9)


@pytest.mark.parametrize("h", [
    hyper(schedule=CONSTANT, eta0=1.0, curv_max=10.0),  # does not decay
    hyper(schedule=ADAPTIVE, eta0=1.0, curv_max=10.0),
    hyper(schedule=AUTO, curv_max=10.0),
    hyper(schedule=OPTIMAL, alpha=0.01, optimal_init=100.0),  # no cap
    _optimal_capped(floor=True),  # the floor keeps a per-sample step
    hyper(schedule=OPTIMAL, alpha=0.01, optimal_init=100.0, curv_max=0.5),  # cap 2 > rate 1
], ids=["constant", "adaptive", "auto", "no cap", "floor", "cap above the rate"])
def test_the_cap_holds_nothing_else(h):
    assert not cap_holds_decay(h, 1.0, 1e9)


# ---------------------------------------------------- the fold prediction


def _first_fold(decay, scale_min):
    """The number of steps, each multiplying the scale by ``decay``, after
    which the scale is below ``2 * scale_min`` (the prediction's margin:
    the pass itself folds below ``scale_min``)."""
    return math.floor(math.log(2.0 * scale_min) / math.log(decay)) + 1


@pytest.mark.parametrize("batch_size", [1, 5])
def test_pass_would_fold_when_the_decay_reaches_the_floor(batch_size):
    # constant steps of m * 0.1 with l2 = 0.5 / m: the scale decays by 0.95 a batch
    m = batch_size
    h = hyper(eta0=0.1, l2=0.5 / m, batch_size=float(m), scale_min=1e-9)
    clock = np.zeros(K.N_CLOCK)
    clock[K.T], clock[K.SCALE] = 1.0, 1.0
    batches = _first_fold(0.95, 1e-9)
    assert K.pass_would_fold(clock, h, batches * m, False)
    assert not K.pass_would_fold(clock, h, (batches - 1) * m, False)
    # a state already decayed folds sooner
    clock[K.SCALE] = 0.95 ** 10
    assert K.pass_would_fold(clock, h, (batches - 10) * m, False)
    assert not K.pass_would_fold(clock, h, (batches - 11) * m, False)


def test_pass_would_fold_reads_the_schedule_and_the_cap():
    clock = np.zeros(K.N_CLOCK)
    clock[K.T], clock[K.SCALE] = 1.0, 1.0
    # invscaling eta0 / sqrt(t), l2 = 1: the scale is prod (1 - 1 / sqrt(t)) over
    # t = 4, 5, ... (t = 1 would wipe it out at once: start later)
    clock[K.T] = 4.0
    h = hyper(schedule=INVSCALING, eta0=1.0, power_t=0.5, l2=1.0, scale_min=1e-9)
    scale, n = 1.0, 0
    while scale >= 2e-9:
        scale *= 1.0 - 1.0 / math.sqrt(4.0 + n)
        n += 1
    assert K.pass_would_fold(clock, h, n, False)
    assert not K.pass_would_fold(clock, h, n - 1, False)
    # a cap of 0.01 on the steps: the scale decays by 0.99 a step
    capped = hyper(schedule=INVSCALING, eta0=1.0, power_t=0.5, l2=1.0, scale_min=1e-9,
                   curv_max=100.0)
    assert not K.pass_would_fold(clock, capped, n, False)
    assert K.pass_would_fold(clock, capped, _first_fold(0.99, 1e-9), False)
    # global-norm clipping may widen the cap to nothing: assumed
    assert K.pass_would_fold(clock, capped, n, True)
    # no L2: never
    assert not K.pass_would_fold(clock, hyper(l2=0.0), 10**6, False)


@pytest.mark.parametrize("n_rows", [80, 193, 200])
def test_a_pass_predicted_not_to_fold_does_not(n_rows):
    """The real pass against the prediction a journaled stream relies on.
    Constant steps of 0.1 with alpha 1 decay the scale by 0.9 a row, and no
    row has a gradient (epsilon-insensitive at its target): the pass folds
    once the scale is below scale_min, the prediction says so from twice
    that (its margin), so at 193 rows it predicts a fold the pass does not
    make, and it never misses one."""
    X = np.ones((n_rows, 3))
    y = np.zeros(n_rows)
    est = MinibatchSGDRegressor(loss="epsilon_insensitive", learning_rate="constant",
                                eta0=0.1, alpha=1.0, shuffle=False)
    est.partial_fit(X[:1], y[:1])  # one row: a state at scale 0.9
    state = est._state
    trainer = Trainer(est)
    h = np.asarray(trainer.hyper(state, trainer.plan(), n_rows, online=True), dtype=np.float64)
    scale_min = h[K.H_SCALE_MIN]
    predicted = K.pass_would_fold(state.clock, h, n_rows, False)
    est.partial_fit(X, y)
    # without a fold the scale is 0.9 ** (1 + n_rows); a fold resets it to 1
    folded = not np.isclose(est._state.clock[K.SCALE], 0.9 ** (1 + n_rows), rtol=1e-9,
                            atol=0.0)
    assert predicted == (1 + n_rows >= _first_fold(0.9, scale_min))
    assert folded == (1 + n_rows >= _first_fold(0.9, scale_min / 2.0))
    assert predicted or not folded
