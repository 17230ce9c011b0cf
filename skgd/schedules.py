"""Learning-rate schedules, as scikit-learn's SGD defines them.

``t`` counts training samples seen (starting at 1), exactly as in
:class:`sklearn.linear_model.SGDClassifier`, so ``eta0`` and ``power_t`` mean
the same thing. How a minibatch of ``m`` samples steps:

1. **Linear scaling.** One step along the **mean** gradient of the batch,
   with a step size of ``m`` times the per-sample rate at the batch's middle
   sample: the step covers as much ground as ``m`` per-sample steps, so the
   same ``eta0`` works for every ``batch_size`` (Goyal et al., 2017). On
   sparse data, where the rows of a batch touch different columns, this is
   exactly what ``m`` per-sample steps would do to each weight.
2. **A cap from the data's curvature** for losses that declare it: the
   weights' step never exceeds ``1 / (curvature * L_w(m))`` and the
   intercepts' ``1 / (curvature * L_b(m))`` (their own blocks'
   smoothness: the intercept is in every row, so on sparse text its step
   must stay far shorter than the rare features'). For losses with a
   bounded derivative (log, hinge, Huber, softmax) a cap never goes below
   one per-sample step; the others get one hard cap from the joint
   smoothness. See :mod:`skgd._smoothness` and
   :attr:`skgd.losses.Loss.curvature`. (Rules that start large batches more
   gently, such as counting the offset ``t0`` of 'optimal' in steps as
   Pegasos does, or in ``sqrt(m)`` samples, were measured and learned
   markedly slower on streamed text and small data sets.)

With ``batch_size=1`` the rule is scikit-learn's per-sample one.

Each schedule is one object, an instance of a :class:`Schedule` subclass
(:func:`get_schedule` finds it by its ``learning_rate`` name or its integer
code): its parameters, its state, the rules the training driver applies in
Python (``t0``, averaging, momentum, the adaptive lowering, the cap
warning, the parameter checks) and what it sets in the compiled pass's
hyper-parameters (:func:`skgd._engine.make_hyper`). Its arithmetic per
batch is compiled (``skgd._kernels``: ``learning_rate``, ``step_sizes``,
``auto_rate``, ``auto_momentum``, ``passive_aggressive_step``).

Which schedule a pass runs is a run-time choice: the pass reads the code
from its hyper-parameters once per batch (or, passive-aggressive, per row)
and is compiled once for all of them, as the compiled pass is specialised
only on what its per-row cost depends on (loss, layout, dtype, per-sample
or minibatch). Two schedules only pick which compiled pass runs: 'auto'
and passive-aggressive ones take the full pass, not the plain one
(:attr:`Schedule.plain_pass`), and 'auto' keeps a pass whole across
threads (:attr:`Schedule.splittable`).
"""

import math
from collections import namedtuple

from .losses import MulticlassLoss

CONSTANT, OPTIMAL, INVSCALING, ADAPTIVE, PA1, PA2, AUTO = 0, 1, 2, 3, 4, 5, 6

SCHEDULES = {
    "constant": CONSTANT,
    "optimal": OPTIMAL,
    "invscaling": INVSCALING,
    "adaptive": ADAPTIVE,
    "pa1": PA1,
    "pa2": PA2,
    "auto": AUTO,
}


def is_passive_aggressive(schedule):
    """Whether a schedule code is one of the passive-aggressive rules."""
    return PA1 <= schedule <= PA2

# The most momentum 'auto' uses (skgd._kernels.auto_momentum): a long-run
# step of at most 20 capped steps. (0.9 held digits at batch 256, where DoG
# wants about 12 capped steps, mu = 0.915, to a gap of 0.011 after 50 epochs;
# 0.95 reaches 0.002.)
AUTO_MOMENTUM = 0.95

# The loss each passive-aggressive schedule needs, by estimator kind.
PA_LOSSES = {"classifier": "hinge", "regressor": "epsilon_insensitive"}

# 'adaptive' divides its rate by this each time training stops improving,
# while the rate is above ADAPTIVE_FLOOR (scikit-learn's rule).
ADAPTIVE_FACTOR = 5.0
ADAPTIVE_FLOOR = 1e-6


def optimal_init(alpha, dloss):
    """Offset ``t0`` of the ``optimal`` schedule (Bottou's SGD heuristic).

    The first step size is chosen as if the weights had the typical norm
    ``sqrt(1 / sqrt(alpha))`` of a regularised solution.

    Parameters
    ----------
    alpha : float
        Regularisation strength, > 0.
    dloss : callable
        Derivative of the loss, ``dloss(p, y)``.

    Returns
    -------
    t0 : float
    """
    typw = math.sqrt(1.0 / math.sqrt(alpha))
    eta0 = typw / max(1.0, dloss(-typw, 1.0))
    return 1.0 / (eta0 * alpha)


#: What a schedule sets of the step caps (see :meth:`Schedule.caps`).
Caps = namedtuple("Caps", "curvature cap_floor smoothness")


class Schedule:
    """A learning-rate schedule: one object holds all of it but the
    compiled arithmetic.

    The base class is a schedule that takes its step from ``eta0`` under
    the step caps (with their per-sample floor, for losses that declare
    one), averages when ``average`` says so, adds no momentum and has no
    state of its own. Subclasses change what differs. Instances are
    stateless (a schedule's state, if any, lives in the engine's state:
    see :class:`Auto`), so :func:`get_schedule` hands out one per name.

    Attributes
    ----------
    name : str
        Its ``learning_rate`` name.
    code : int
        The integer the compiled pass selects it by (``Hyper.schedule``).
    parameters : tuple of str
        The estimator parameters its rate reads.
    warns_on_cap : bool
        Whether its steps are ones a user chose (from ``eta0``), so that a
        cap shortening them is worth a :class:`~skgd.StepCapWarning`.
    lowers_rate : bool
        Whether the driver lowers its rate between epochs (:meth:`lower`).
    decays : bool
        Whether its rate falls with the sample count (:meth:`falls_to`), so
        that a cap can hold it only for a while.
    capped : bool
        Whether the step caps apply to it (and so whether the driver
        measures the data's smoothness for it).
    reads_row_sq : bool
        Whether it reads the mean squared row norm of the data seen
        (``EngineState.row_sq``).
    uncapped_first : bool
        Whether a per-sample run may take scikit-learn's uncapped steps
        first (see ``_uncapped_first`` in the training driver).
    plain_pass : bool
        Whether the plain pass (skgd._plain_pass) can run it.
    splittable : bool
        Whether each output's steps are its own, so a pass may be split by
        outputs across threads.
    mixable : bool
        Whether data-parallel training (parameter mixing) supports it.
    """

    name = None
    code = None
    parameters = ("eta0",)
    warns_on_cap = False
    lowers_rate = False
    decays = False
    capped = True
    reads_row_sq = False
    uncapped_first = True
    plain_pass = True
    splittable = True
    mixable = True

    def __repr__(self):
        return f"{type(self).__name__}()"

    # ------------------------------------------------------ Python rules

    def check(self, *, alpha, momentum, loss, kind, multi_class="ovr"):
        """Raise ValueError if the estimator's parameters cannot train with
        this schedule. ``kind``: 'classifier' or 'regressor'; ``loss``: the
        ``loss`` parameter as given (a name or a Loss)."""

    def t0(self, alpha, loss):
        """The offset ``t0`` of the sample count in the rate
        (``Hyper.optimal_init``): 0 but for 'optimal'. ``loss``: the Loss
        object."""
        return 0.0

    def average(self, average):
        """``average`` as training uses it, from the ``average`` parameter."""
        return average

    def rule(self, rule, dense):
        """The update rule (``skgd._engine.Rule``) of a pass on ``dense``
        data (as the first data decided), from the one the parameters give."""
        return rule

    def lower(self, rate):
        """The rate after training stopped improving at ``rate``: None if
        this schedule does not lower it (or no longer does)."""
        return None

    def falls_to(self, rate, *, alpha, eta0, power_t, optimal_init):
        """The sample count ``t`` at which the per-sample rate has fallen
        to ``rate``: None if it never does."""
        return None

    def measures_smoothness(self, loss, batch_size):
        """Whether the step caps can bind, so the driver measures the data's
        smoothness for them: a loss with a curvature bound, and not
        per-sample steps (``batch_size=1``) of a loss whose caps never go
        below one per-sample step."""
        if not self.capped or not loss.curvature:
            return False
        return not (loss.per_sample_floor and batch_size == 1)

    # The words of the StepCapWarning (training driver's _warn_if_capped).

    def asked_for(self, eta0, alpha):
        """The parameters that asked for the steps a cap shortens."""
        return f"eta0={eta0!r}"

    def cap_limit(self, room, asked, batch_size, eta0):
        """The largest ``eta0`` whose steps the caps leave as they are, for
        a cap that leaves ``room`` of the step ``asked`` for a batch."""
        return room * eta0

    def cap_tip(self, limit):
        """How to ask for steps the caps leave as they are."""
        return f"eta0 <= {limit:.3g}"

    # ------------------------------------------------- the kernel's side

    def intercept_decay(self, decay):
        """The factor of the intercepts' step, from the data's (0.01 on
        sparse data, see skgd._engine.sparse_intercept_decay)."""
        return decay

    def caps(self, curvature, per_sample_floor, smoothness, row_sq):
        """What the step caps read (:class:`Caps`): the loss's
        ``curvature`` (0: no cap), whether a cap keeps one per-sample step
        (``per_sample_floor``) and the data's ``smoothness`` tuple
        ``(lam_w, l_max_w, lam_b, l_max_b)``. ``row_sq``: the mean squared
        row norm of the data seen."""
        return Caps(curvature or 0.0, bool(per_sample_floor), smoothness)

    def hyper(self, *, alpha, eta0, power_t, optimal_init):
        """Its fields of the compiled pass's hyper-parameters (``Hyper``):
        the code and the rate's parameters (all set whatever it reads)."""
        return {"schedule": self.code, "alpha": alpha, "eta0": eta0, "power_t": power_t,
                "optimal_init": optimal_init}


class Constant(Schedule):
    """``constant``: ``eta = eta0``."""

    name, code = "constant", CONSTANT
    warns_on_cap = True


class Optimal(Schedule):
    """``optimal``: ``eta = 1 / (alpha * (t0 + t - 1))`` with Bottou's
    heuristic ``t0`` (see :func:`optimal_init`); the default for
    classification."""

    name, code = "optimal", OPTIMAL
    parameters = ("alpha",)
    decays = True

    def check(self, *, alpha, momentum, loss, kind, multi_class="ovr"):
        if alpha == 0:
            raise ValueError(
                "alpha must be > 0 since learning_rate is 'optimal': alpha is used "
                "to compute the optimal learning rate."
            )

    def t0(self, alpha, loss):
        """Bottou's heuristic (:func:`optimal_init`) for ``loss``."""
        if isinstance(loss, MulticlassLoss):
            # Bottou's heuristic needs the derivative's scale at margin
            # -typw: 1 for softmax and multiclass hinge, as for log/hinge.
            t0 = optimal_init(alpha, lambda p, y: -1.0)
        else:
            # the plain Python function: one call is not worth a compilation
            fn, params = getattr(loss.dloss, "py_func", loss.dloss), loss.params()
            t0 = optimal_init(alpha, lambda p, y: fn(p, y, *params))
        if not (t0 + 1.0 > 1.0):
            raise ValueError(
                f"alpha={alpha!r} is too large for learning_rate='optimal': its "
                f"offset t0 = {t0:.3g} vanishes next to the sample count, so the rate "
                "1 / (alpha * (t0 + t - 1)) wipes out every weight at each step. Use a "
                "smaller alpha (the regularisation strength; 1e-6 to 1e-1 is usual) or "
                "another learning_rate."
            )
        return t0

    def falls_to(self, rate, *, alpha, eta0, power_t, optimal_init):
        # 1 / (alpha (t0 + t - 1)) <= rate
        return 1.0 / (alpha * rate) - optimal_init + 1.0

    def asked_for(self, eta0, alpha):
        return f"learning_rate='optimal', alpha={alpha!r}"

    def cap_limit(self, room, asked, batch_size, eta0):
        return room * (asked / batch_size)

    def cap_tip(self, limit):
        return f"learning_rate='constant' with eta0 <= {limit:.3g}"


class InvScaling(Schedule):
    """``invscaling``: ``eta = eta0 / t ** power_t``; the default for
    regression."""

    name, code = "invscaling", INVSCALING
    parameters = ("eta0", "power_t")
    warns_on_cap = True
    decays = True

    def falls_to(self, rate, *, alpha, eta0, power_t, optimal_init):
        # eta0 / t ** power_t <= rate
        if power_t <= 0.0:
            return None
        return (eta0 / rate) ** (1.0 / power_t)


class Adaptive(Schedule):
    """``adaptive``: ``eta = eta0`` while training improves; divided by 5
    each time ``n_iter_no_change`` epochs in a row fail to improve by
    ``tol``, while it is above ``1e-6`` (so it ends between ``2e-7`` and
    ``1e-6``). The driver lowers it (:meth:`lower`) and the pass reads the
    lowered rate as its ``eta0``."""

    name, code = "adaptive", ADAPTIVE
    warns_on_cap = True
    lowers_rate = True

    def lower(self, rate):
        if rate > ADAPTIVE_FLOOR:
            return rate / ADAPTIVE_FACTOR
        return None


class PassiveAggressive(Schedule):
    """``pa1``, ``pa2``: passive-aggressive steps (Crammer et al. 2006), as
    scikit-learn >= 1.8 defines them, for the hinge loss (classification)
    and the epsilon-insensitive loss (regression): each row steps by ``tau
    = min(eta0, loss / ||x||^2)`` (PA-I) or ``tau = loss / (||x||^2 + 1 /
    (2 eta0))`` (PA-II) along its loss derivative, and L2 decays the
    weights at rate ``eta0``. A minibatch takes the mean of its rows'
    steps; no step cap applies. The ``tol`` rule watches the loss alone, as
    in scikit-learn."""

    capped = False
    plain_pass = False

    def check(self, *, alpha, momentum, loss, kind, multi_class="ovr"):
        needed = PA_LOSSES[kind]
        if multi_class == "multinomial":
            raise ValueError(
                f"Learning rate '{self.name}' (passive-aggressive) is defined "
                "for binary and one-vs-rest problems, not for multi_class='multinomial'."
            )
        if loss != needed:
            raise ValueError(
                f"Learning rate '{self.name}' only works with loss "
                f"'{needed}' (passive-aggressive steps are defined for it); got "
                f"loss={loss!r}."
            )

    def caps(self, curvature, per_sample_floor, smoothness, row_sq):
        # passive-aggressive steps bound themselves: no cap
        return Caps(0.0, bool(per_sample_floor), smoothness)


class PassiveAggressiveI(PassiveAggressive):
    __doc__ = "PA-I. " + PassiveAggressive.__doc__
    name, code = "pa1", PA1


class PassiveAggressiveII(PassiveAggressive):
    __doc__ = "PA-II. " + PassiveAggressive.__doc__
    name, code = "pa2", PA2


#: The state of 'auto' (see :meth:`Auto.measured`).
AutoState = namedtuple("AutoState", "grad_sq reach bound")


class Auto(Schedule):
    """``auto``: nothing to tune (``eta0`` is not used).

    Each batch's step is the distance-over-gradients rate of DoG (Ivgi,
    Hinder & Carmon 2023), ``m * r / sqrt(G)`` (``r`` the farthest the
    weights have moved from the origin, ``G`` the summed squared
    per-sample gradient norms), under the step cap without its per-sample
    floor (for bounded-derivative losses the cap reads the mean row norm,
    not the largest). On dense data, when the cap shortens the step DoG
    wants, heavy-ball momentum ``mu = 1 - cap / wanted`` (at most
    ``AUTO_MOMENTUM``) makes up the difference, with the L2 decay at the
    long-run step ``eta / (1 - mu)``. A batch shorter than ``batch_size``
    (the ``m`` rows left over at the end of a pass) takes ``m /
    batch_size`` of a full batch's steps, and a full batch's momentum: by
    its own, below the cap, it would step its rows many times further than
    the capped full batches step theirs, and it would want no momentum,
    wiping the velocity every pass. The published model is the average of
    the iterates weighted by ``t ** 2`` (polynomial-decay averaging, Shamir
    & Zhang 2013), whatever ``average`` says (an int still says when it
    begins). The intercept is not damped on sparse data: its own cap holds
    it. A stream keeps ``r``, ``G`` and the average across ``partial_fit``
    calls; there, with an L2 penalty, ``r`` is at least ``sqrt(2 F(w0) /
    alpha)``, the bound on the optimum's norm from the objective at the
    first batch's weights (a stream sees each row once: no time to measure
    the distance).

    Its state lives in the engine's clock (the compiled pass updates it),
    in the slots named by :attr:`STATE_SLOTS`; :meth:`measured` reads it.
    """

    name, code = "auto", AUTO
    parameters = ()
    reads_row_sq = True
    uncapped_first = False
    plain_pass = False
    splittable = False  # its rate reads every output's gradient and weights
    mixable = False  # the rate each shard measures is not combined at a mix

    #: Its state: each field of :class:`AutoState` and the name of its
    #: slot in the engine's ``clock`` (constants of skgd._kernels):
    #: ``grad_sq``, the sum over the rows seen of the sample weight times
    #: the squared loss derivatives (``G`` over the mean ``|x|^2``);
    #: ``reach``, the farthest the weights have been from the origin
    #: (``r``); ``bound``, the bound on the optimum's norm from the first
    #: batch of a stream (0: none yet).
    STATE_SLOTS = AutoState(grad_sq="GRAD_SQ", reach="REACH", bound="BOUND")

    def measured(self, state):
        """Its state in the engine's ``state`` (an EngineState), as an
        :class:`AutoState`."""
        from . import _kernels  # (which imports this module)

        return AutoState(*(float(state.clock[getattr(_kernels, slot)])
                           for slot in self.STATE_SLOTS))

    def check(self, *, alpha, momentum, loss, kind, multi_class="ovr"):
        if momentum > 0:
            raise ValueError(
                f"momentum={momentum!r} cannot be combined with learning_rate='auto', "
                "which sets its own momentum (on dense data, for the steps its cap "
                "shortens). Use momentum=0, or another learning_rate."
            )

    def average(self, average):
        """Always averages (weights growing as t^2 are part of its rule, see
        skgd._kernels.auto_rate); an int still says when its averaging
        begins."""
        return average if average else True

    def rule(self, rule, dense):
        """On dense data, momentum of at most ``AUTO_MOMENTUM`` for the steps
        the cap shortens. On sparse data none: momentum moves every weight
        at every step."""
        return rule._replace(momentum=(AUTO_MOMENTUM, False)) if dense else rule

    def measures_smoothness(self, loss, batch_size):
        # its caps have no per-sample floor: they can bind at batch_size=1
        return bool(loss.curvature)

    def intercept_decay(self, decay):
        # its own caps keep the intercept's steps in check
        return 1.0

    def caps(self, curvature, per_sample_floor, smoothness, row_sq):
        # no per-sample floor; for losses with a bounded derivative the
        # weights' cap reads the mean |x|^2 in place of the largest, as a
        # few long rows only make such steps bounce, not diverge
        lam_w, l_max_w, lam_b, l_max_b = smoothness
        if per_sample_floor and row_sq > 0.0:
            smoothness = (lam_w, min(l_max_w, row_sq), lam_b, l_max_b)
        return Caps(curvature or 0.0, False, smoothness)


_BY_NAME = {s.name: s for s in (Constant(), Optimal(), InvScaling(), Adaptive(),
                                 PassiveAggressiveI(), PassiveAggressiveII(), Auto())}
# every key a caller may hold: a name, a code, a code as a float (a
# hyper-parameter array's slot); 2.0 and 2 hash alike, so one entry serves both
_LOOKUP = {**_BY_NAME, **{s.code: s for s in _BY_NAME.values()}}


def get_schedule(schedule):
    """The :class:`Schedule` of a ``learning_rate`` name, an integer code
    (as in ``SCHEDULES``, or a hyper-parameter array's float) or a
    Schedule (returned as it is)."""
    try:  # one dict lookup: a stream's every call asks several times
        return _LOOKUP[schedule]
    except (KeyError, TypeError):
        pass
    if isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, str):
        raise KeyError(schedule)
    return _LOOKUP[int(schedule)]
