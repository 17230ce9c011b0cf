"""Each learning-rate schedule's step, the step caps, the cap-hold rule and
the fold prediction, one function at a time, against the formulas of
skgd.schedules and skgd._kernels (worked out here by hand, not read back
from the code)."""

import itertools
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skgd import MinibatchSGDRegressor
from skgd import _kernels as K
from skgd._engine import Hyper
from skgd._step_caps import cap_holds_decay
from skgd._training import Trainer
from skgd.losses import EpsilonInsensitive, Hinge, LogLoss, SoftmaxLoss, SquaredError
from skgd.schedules import (
    ADAPTIVE,
    AUTO,
    AUTO_MOMENTUM,
    CONSTANT,
    INVSCALING,
    OPTIMAL,
    PA1,
    PA2,
    SCHEDULES,
    Schedule,
    get_schedule,
    is_passive_aggressive,
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


# ------------------------------------------------------ the schedule objects


ALL_NAMES = ["constant", "optimal", "invscaling", "adaptive", "pa1", "pa2", "auto"]


def test_each_name_and_code_finds_one_schedule():
    assert sorted(SCHEDULES) == sorted(ALL_NAMES)
    for name, code in SCHEDULES.items():
        schedule = get_schedule(name)
        assert isinstance(schedule, Schedule)
        assert (schedule.name, schedule.code) == (name, code)
        # by its code, as the hyper-parameter array holds it (a float), and itself
        assert get_schedule(code) is get_schedule(float(code)) is schedule
        assert get_schedule(schedule) is schedule
    assert is_passive_aggressive(get_schedule("pa1").code)
    assert not is_passive_aggressive(get_schedule("auto").code)


class _ScaledDerivative:
    """A loss whose derivative is ``c`` everywhere (``c`` its parameter)."""

    curvature, per_sample_floor = None, False

    def __init__(self, c):
        self.c = c

    @staticmethod
    def dloss(p, y, c):
        return c

    def params(self):
        return (self.c,)


def test_only_optimal_offsets_the_sample_count():
    # typw = (1 / sqrt(1e-4)) ** 0.5 = 10; a derivative of 4 at -typw: the
    # first rate typw / 4 = 2.5, so t0 = 1 / (2.5 * 1e-4) = 4000
    assert_allclose(get_schedule("optimal").t0(1e-4, _ScaledDerivative(4.0)), 4000.0,
                    rtol=1e-15)
    # a derivative below 1 in size (hinge's -1, log's): t0 = 1 / (typw alpha) = 1000
    assert_allclose(get_schedule("optimal").t0(1e-4, _ScaledDerivative(-1.0)), 1000.0,
                    rtol=1e-15)
    assert_allclose(get_schedule("optimal").t0(1e-4, LogLoss()), 1000.0, rtol=1e-15)
    # the multiclass losses count as a derivative of size 1, whatever theirs
    assert_allclose(get_schedule("optimal").t0(1e-4, SoftmaxLoss()), 1000.0, rtol=1e-15)
    for name in set(ALL_NAMES) - {"optimal"}:
        assert get_schedule(name).t0(1e-4, Hinge()) == 0.0


def test_optimal_refuses_an_alpha_whose_offset_vanishes():
    # alpha = 1e32: typw = 1e-8, t0 = 1 / (1e-8 * 1e32) = 1e-24, and 1 + t0 == 1
    with pytest.raises(ValueError, match="alpha=1e\\+32 is too large"):
        get_schedule("optimal").t0(1e32, Hinge())
    get_schedule("constant").t0(1e32, Hinge())  # t0 = 0 whatever alpha


@pytest.mark.parametrize("name", ALL_NAMES)
def test_only_auto_always_averages(name):
    schedule = get_schedule(name)
    for average in (False, 0, True, 1, 10):
        expected = True if name == "auto" and not average else average
        assert schedule.average(average) is expected


@pytest.mark.parametrize("name", ALL_NAMES)
def test_only_auto_adds_momentum_and_only_on_dense_data(name):
    from skgd._engine import make_rule

    rule = make_rule(clip_value=None, clip_norm=1.0, momentum=0.0, nesterov=False, l1=0.0,
                     average=True)
    schedule = get_schedule(name)
    assert schedule.rule(rule, dense=False) == rule
    dense = schedule.rule(rule, dense=True)
    if name == "auto":
        assert dense == rule._replace(momentum=(AUTO_MOMENTUM, False))
        assert AUTO_MOMENTUM == 0.95
    else:
        assert dense == rule


def test_adaptive_divides_its_rate_by_5_while_it_is_above_1e_6():
    adaptive = get_schedule("adaptive")
    assert adaptive.lowers_rate
    assert adaptive.lower(0.5) == 0.5 / 5.0
    assert adaptive.lower(1.1e-6) == 1.1e-6 / 5.0
    assert adaptive.lower(1e-6) is None  # the floor
    assert adaptive.lower(1e-9) is None
    # from eta0 = 1: 1 / 5 ** 9 = 5.1e-7 is the first rate at or below 1e-6
    rate, n = 1.0, 0
    while (lowered := adaptive.lower(rate)) is not None:
        rate, n = lowered, n + 1
    assert n == 9
    assert_allclose(rate, 1.0 / 5.0 ** 9, rtol=1e-14)
    for name in set(ALL_NAMES) - {"adaptive"}:
        assert not get_schedule(name).lowers_rate
        assert get_schedule(name).lower(0.5) is None


def test_the_cap_warning_is_for_the_steps_a_user_chose():
    warned = {name for name in ALL_NAMES if get_schedule(name).warns_on_cap}
    assert warned == {"constant", "invscaling", "adaptive"}
    # the step 'optimal' asked for came from alpha: its advice is a constant rate
    optimal, constant = get_schedule("optimal"), get_schedule("constant")
    assert optimal.asked_for(0.1, 1e-4) == "learning_rate='optimal', alpha=0.0001"
    assert constant.asked_for(0.1, 1e-4) == "eta0=0.1"
    # a cap that leaves 1/4 of a batch of 8's step 2.0 (optimal) or of eta0 0.1
    assert optimal.cap_limit(0.25, 2.0, 8, 0.1) == 0.25 * 2.0 / 8
    assert constant.cap_limit(0.25, 2.0, 8, 0.1) == 0.25 * 0.1
    assert optimal.cap_tip(0.0625) == "learning_rate='constant' with eta0 <= 0.0625"
    assert constant.cap_tip(0.025) == "eta0 <= 0.025"


@pytest.mark.parametrize("name", ["optimal", "invscaling"])
def test_a_decaying_rate_falls_to_a_given_rate(name):
    schedule = get_schedule(name)
    params = dict(alpha=0.01, eta0=1.0, power_t=0.5, optimal_init=100.0)
    t = schedule.falls_to(0.1, **params)
    # optimal: 1 / (0.01 (100 + t - 1)) = 0.1 at t = 901; invscaling: 1 / sqrt(t) at 100
    assert_allclose(t, 901.0 if name == "optimal" else 100.0, rtol=1e-14)
    h = hyper(schedule=schedule.code, **params)
    assert_allclose(K.learning_rate(h, t), 0.1, rtol=1e-14)


def test_the_other_rates_never_fall():
    params = dict(alpha=0.01, eta0=1.0, power_t=0.0, optimal_init=100.0)
    assert get_schedule("invscaling").falls_to(0.1, **params) is None  # power_t = 0
    for name in set(ALL_NAMES) - {"optimal", "invscaling"}:
        assert not get_schedule(name).decays
        assert get_schedule(name).falls_to(0.1, **params) is None


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("loss", [Hinge(), SquaredError(), EpsilonInsensitive()],
                         ids=["floor", "hard cap", "no curvature"])
@pytest.mark.parametrize("batch_size", [1, 8])
def test_which_schedules_measure_the_datas_smoothness(name, loss, batch_size):
    """Where the caps can bind: a loss with a curvature bound, not under a
    passive-aggressive schedule, and (but for 'auto', whose caps have no
    per-sample floor) not per-sample steps of a loss whose caps keep one."""
    expected = (bool(loss.curvature) and name not in ("pa1", "pa2")
                and (name == "auto" or not (loss.per_sample_floor and batch_size == 1)))
    assert get_schedule(name).measures_smoothness(loss, batch_size) == expected


def test_where_auto_and_passive_aggressive_steps_differ():
    auto = get_schedule("auto")
    assert auto.reads_row_sq and not auto.uncapped_first
    assert not auto.splittable and not auto.mixable and not auto.plain_pass
    assert auto.parameters == ()
    for name in ("pa1", "pa2"):
        pa = get_schedule(name)
        assert not pa.capped and not pa.plain_pass and pa.splittable and pa.mixable
    for name in ("constant", "optimal", "invscaling", "adaptive"):
        s = get_schedule(name)
        assert s.capped and s.plain_pass and s.splittable and s.mixable and s.uncapped_first
        assert not s.reads_row_sq


def _check(name, alpha=1e-4, momentum=0.0, loss="hinge", kind="classifier",
           multi_class="ovr"):
    get_schedule(name).check(alpha=alpha, momentum=momentum, loss=loss, kind=kind,
                             multi_class=multi_class)


def test_each_schedule_checks_its_parameters():
    for name in ALL_NAMES:
        _check(name)  # the defaults suit every schedule
    with pytest.raises(ValueError, match="alpha must be > 0 since learning_rate is 'optimal'"):
        _check("optimal", alpha=0.0)
    _check("constant", alpha=0.0)
    with pytest.raises(ValueError, match="momentum=0.5 cannot be combined with "
                                         "learning_rate='auto'"):
        _check("auto", momentum=0.5)
    _check("constant", momentum=0.5)
    for name in ("pa1", "pa2"):
        with pytest.raises(ValueError, match=f"'{name}' only works with loss 'hinge'"):
            _check(name, loss="log_loss")
        with pytest.raises(ValueError, match=f"'{name}' only works with loss "
                                             "'epsilon_insensitive'"):
            _check(name, loss="squared_error", kind="regressor")
        _check(name, loss="epsilon_insensitive", kind="regressor")
        with pytest.raises(ValueError, match="not for multi_class='multinomial'"):
            _check(name, multi_class="multinomial")
    _check("constant", loss="log_loss", multi_class="multinomial")


def test_the_estimators_raise_the_schedules_errors():
    X, y = np.ones((4, 2)), np.array([0.0, 1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="'pa1' only works with loss 'epsilon_insensitive'"):
        MinibatchSGDRegressor(learning_rate="pa1").fit(X, y)
    with pytest.raises(ValueError, match="cannot be combined with learning_rate='auto'"):
        MinibatchSGDRegressor(learning_rate="auto", momentum=0.9).fit(X, y)


# A sample of make_hyper's inputs: every schedule, loss kind and data kind.
_CURVATURES = [None, 0.25, 2.0]
_SMOOTHNESS = [(0.0, 0.0, 0.0, 0.0), (2.5, 7.0, 1.0, 3.0)]


def _expected_caps(name, curvature, per_sample_floor, smoothness, row_sq):
    """The caps' fields of the hyper-parameters, from the rules of
    skgd.schedules: no cap for passive-aggressive steps; 'auto' without the
    per-sample floor and, for a loss that has one, the weights' l_max at
    most the mean |x|^2; without the floor, every cap from the joint bound."""
    beta = 0.0 if name in ("pa1", "pa2") or curvature is None else curvature
    lam_w, l_max_w, lam_b, l_max_b = smoothness
    if name == "auto" and per_sample_floor and row_sq > 0.0:
        l_max_w = min(l_max_w, row_sq)
    if not per_sample_floor:
        lam_w = lam_b = lam_w + lam_b
        l_max_w = l_max_b = l_max_w + l_max_b
    return dict(curv_full=beta * lam_w, curv_max=beta * l_max_w, curv_b_full=beta * lam_b,
                curv_b_max=beta * l_max_b,
                cap_floor=1.0 if per_sample_floor and name != "auto" else 0.0)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_each_schedules_hyper_parameters(name):
    for curvature, per_sample_floor, smoothness, row_sq, intercept_decay in itertools.product(
            _CURVATURES, [False, True], _SMOOTHNESS, [0.0, 4.0, 11.0], [1.0, 0.01]):
        _check_hyper(name, curvature, per_sample_floor, smoothness, row_sq, intercept_decay)


def _check_hyper(name, curvature, per_sample_floor, smoothness, row_sq, intercept_decay):
    from skgd._engine import make_hyper

    alpha, eta0, power_t, t0 = 1e-4, 0.3, 0.25, 417.5
    # by its name, its code or the object: the same array
    arrays = [np.asarray(make_hyper(
        schedule=schedule, alpha=alpha, eta0=eta0, power_t=power_t, optimal_init=t0,
        penalty="elasticnet", l1_ratio=0.15, fit_intercept=True, batch_size=16,
        average=False, dtype=np.float64, curvature=curvature,
        per_sample_floor=per_sample_floor, smoothness=smoothness, weighted_objective=True,
        intercept_decay=intercept_decay, row_sq=row_sq, online=True), dtype=np.float64)
        for schedule in (name, SCHEDULES[name], get_schedule(name))]
    assert arrays[0].tobytes() == arrays[1].tobytes() == arrays[2].tobytes()
    got = dict(zip(K.HYPER_FIELDS, arrays[0].tolist(), strict=True))
    expected = dict(
        schedule=float(SCHEDULES[name]), alpha=alpha, eta0=eta0, power_t=power_t,
        optimal_init=t0, l2=alpha * (1.0 - 0.15), fit_intercept=1.0, batch_size=16.0,
        scale_min=1e-9, prefetch_weights=0.0, prefetch_rows=0.0, weighted_objective=1.0,
        # 'auto''s own caps hold the intercept: its step is not damped on sparse data
        intercept_decay=1.0 if name == "auto" else intercept_decay,
        row_sq=row_sq + 1.0, online=1.0,
        **_expected_caps(name, curvature, per_sample_floor, smoothness, row_sq))
    assert got == expected


@pytest.mark.parametrize("average, dtype, scale_min", [
    (False, np.float64, 1e-9), (True, np.float64, 1e-6), (3, np.float32, 1e-3)])
def test_averaging_sets_the_fold_threshold(average, dtype, scale_min):
    from skgd._engine import make_hyper

    h = make_hyper(schedule="constant", alpha=1e-4, eta0=0.1, power_t=0.5, optimal_init=0.0,
                   penalty="l2", l1_ratio=0.0, fit_intercept=False, batch_size=1,
                   average=average, dtype=dtype, curvature=None, per_sample_floor=False,
                   smoothness=_SMOOTHNESS[0])
    assert h.scale_min == scale_min


def test_auto_reads_its_state_from_the_engines_clock():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    est = MinibatchSGDRegressor(learning_rate="auto", batch_size=8, max_iter=3, tol=None,
                                random_state=0).fit(X, y)
    auto = get_schedule("auto")
    measured = auto.measured(est._state)
    assert measured == (est._state.clock[K.GRAD_SQ], est._state.clock[K.REACH],
                        est._state.clock[K.BOUND])
    assert measured.grad_sq > 0.0 and measured.reach > 0.0
    # with L2, sqrt(2 F(w0) / alpha) from the first batch (what a stream's reach starts at)
    assert measured.bound > 0.0
