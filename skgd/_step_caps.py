"""The step caps seen from the driver: where a cap binds, whether it holds
a decaying schedule back, and when a run counts as diverged.

The caps themselves are compiled (``skgd._kernels.step_sizes``); these
functions read them from a pass's hyper-parameters on the Python side.
"""

import math

import numpy as np

from . import _kernels
from ._report import warn_user
from ._validation import overflow_sentence, sum_of_squares
from .exceptions import StepCapWarning
from .schedules import get_schedule

# Taken as divergence even while finite: the weights' squared norm growing
# by this factor in one pass, to at least this value (ten orders of
# magnitude of the norm; the second condition spares a stream that starts
# from nearly-zero weights).
_EXPLOSION = 1e20
# An uncapped batch-1 attempt (see skgd._training.Trainer.uncapped_first)
# counts as diverged when a pass's mean objective exceeds this many times the
# targets' mean square (plus one; about what predicting zero costs), which
# no run that trains comes near: on abalone, runs that train stay within
# 40 times it, while diverging ones reach 1e47 to 1e205 times it, or
# overflow, in their first epoch (scikit-learn's, which clamps the
# derivatives at 1e12, ends at R^2 of about -1e23). A stream's chunk whose
# features grow 1000-fold reached 1e9 times it, its weights 1e4 (from 1).
_BLOWUP = 1e6


class Diverged(ValueError):
    """Training diverged (a ValueError, with scikit-learn's words): at
    ``epoch``, for the reason ``what``."""

    def __init__(self, epoch, what):
        super().__init__(diverged_message(epoch, what))
        self.epoch = epoch
        self.what = what

    def __reduce__(self):  # from a worker process (joblib, Dask) as it was raised
        return type(self), (self.epoch, self.what)


class RetryCapped(Exception):
    """An uncapped ``partial_fit`` pass diverged (:class:`Diverged`
    ``diverged``): its call runs again under the step caps."""

    def __init__(self, diverged):
        super().__init__(str(diverged))
        self.diverged = diverged


def diverged_message(epoch, what):
    """The message of a run that diverged: scikit-learn's words first (code
    matches on them), then what happened and what else may help."""
    return (
        f"{overflow_sentence(epoch)} Training diverged: {what}; "
        "lowering eta0 or setting clip_norm may help too."
    )


def check_finite(state, objective, epoch, full=True, norm_before=None):
    """Raise :class:`Diverged` if training diverged: a non-finite loss or
    state, or (given ``norm_before``, the weights' squared norm before the
    pass) weights that grew by ten orders of magnitude in one pass while
    staying finite."""
    if not (math.isfinite(objective) and state.is_finite(full=full)):
        raise Diverged(epoch, "the weights or the loss are no longer finite")
    if norm_before:
        norm = state.squared_norm()
        growth = norm / norm_before
        if growth > _EXPLOSION and norm > _EXPLOSION:
            raise Diverged(
                epoch, f"the weights grew by a factor of {np.sqrt(growth):.3g} in one pass")


def cap_at(hyper, t):
    """``(asked, eta, eta_b, binds)``: the step the schedule asks for at
    sample count ``t``, the weights' and intercepts' steps taken, and
    whether a cap shortens either (the intercepts' sparse-data decay aside)."""
    hyper = np.asarray(hyper, dtype=np.float64)
    m = int(hyper[_kernels.H_BATCH_SIZE])
    asked = m * float(_kernels.learning_rate(hyper, t + 0.5 * (m - 1)))
    # every argument given: numba dispatches a call that leaves defaults
    # out through its slow path (about 65 us, every epoch)
    eta, eta_b = _kernels.step_sizes(hyper, t, m, 1.0, -1.0)
    decay = hyper[_kernels.H_INTERCEPT_DECAY]
    binds = eta < asked * (1.0 - 1e-9) or eta_b < asked * decay * (1.0 - 1e-9)
    return asked, eta, eta_b, binds


def cap_holds_decay(hyper, t, t_end):
    """Whether the weights' cap holds a decaying schedule's steps below one
    per-sample step at sample count ``t``, and the schedule falls below
    the cap before ``t_end``.

    Such steps stay at the cap, so the objective sits at that step's noise
    floor until the schedule catches up and it falls again: those epochs do
    not count towards ``n_iter_no_change`` (on adult, modified Huber's
    objective is flat for about 10 epochs, then falls by a third). A cap
    that only limits how far a minibatch scales its step up (never below a
    per-sample step) does not hold, and a cap that holds past ``t_end``
    would hold the whole run: then the rule counts as usual."""
    hyper = np.asarray(hyper, dtype=np.float64)
    schedule = get_schedule(hyper[_kernels.H_SCHEDULE])
    if not schedule.decays or not hyper[_kernels.H_CURV_MAX] > 0.0:
        return False  # no decay, or no cap (see skgd._kernels.minibatch_step)
    asked, cap, _, _ = cap_at(hyper, t)
    m = hyper[_kernels.H_BATCH_SIZE]
    if not cap < asked / m * (1.0 - 1e-9):
        return False
    # the rate at the middle row of a batch (t + middle) falls to the cap
    middle = 0.5 * (m - 1)
    catch_up = schedule.falls_to(
        cap, alpha=hyper[_kernels.H_ALPHA], eta0=hyper[_kernels.H_ETA0],
        power_t=hyper[_kernels.H_POWER_T], optimal_init=hyper[_kernels.H_OPTIMAL_INIT])
    if catch_up is None:
        return False
    return catch_up - middle <= t_end


def blowup_level(Y, rows, state):
    """The mean objective above which an uncapped attempt has diverged:
    ``_BLOWUP`` times ``1 + mean(y^2)`` over the rows (a regression's
    targets; classes are coded +-1). Costs a pass over a regressor's
    targets, only for such an attempt."""
    if state.outputs != "regression":
        return _BLOWUP * 2.0
    y = Y if rows.size == Y.shape[0] else Y[rows]
    return _BLOWUP * (1.0 + float(sum_of_squares(y)) / max(y.size, 1))


def check_blowup(objectives, epoch, blowup):
    """Raise :class:`Diverged` when a problem's mean objective over the
    epoch exceeds ``blowup`` (None: no limit)."""
    if blowup is None:
        return
    peak = float(objectives.max())
    if peak > blowup:
        raise Diverged(epoch, f"the mean loss reached {peak:.3g}")


def warn_if_capped(est, memo, state, hyper, diverged=None, stream=False):
    """Say, in one :class:`~skgd.StepCapWarning`, which steps the caps
    shorten and by how much, attributed to the user's line.

    ``diverged`` (a :class:`Diverged`): scikit-learn's uncapped
    per-sample steps diverged, and the run starts again under the caps
    (:meth:`skgd._training.Trainer.uncapped_first`); said whatever the schedule. Otherwise
    only the steps a user chose are warned about: those of an ``eta0``
    schedule, when a cap shortens the first step of this call (the
    schedules only decay, so a cap that does not bind then never does).
    A ``fit`` warns at most once; a stream (``stream``, ``partial_fit``)
    once for its parameter setting.
    """
    token = memo.token
    if stream and memo.cap_warned is token:
        return
    schedule = get_schedule(est.learning_rate)
    if diverged is None and not schedule.warns_on_cap:
        return
    asked, eta, eta_b, _ = cap_at(hyper, state.t)
    asked_b = asked * float(hyper[_kernels.H_INTERCEPT_DECAY])
    cut = [(name, before, after) for name, before, after in (
        ("weights'", asked, eta), ("intercept's", asked_b, eta_b))
        if after < before * (1.0 - 1e-9)]
    if not cut:
        return
    memo.cap_warned = token
    m = int(hyper[_kernels.H_BATCH_SIZE])
    steps = " and ".join(f"the {name} step from {before:.3g} to {after:.3g}"
                         for name, before, after in cut)
    asked_for = schedule.asked_for(est.eta0, est.alpha)
    if diverged is not None:
        head = (f"The per-sample steps scikit-learn takes ({asked_for}) diverged on "
                f"this data in epoch {diverged.epoch} ({diverged.what}); trained again "
                f"under the step cap, which shortens {steps}.")
    else:
        head = (f"The step cap shortens {steps} ({asked_for}, batch_size={m}): "
                "longer steps could diverge on this data, and the run differs "
                "from scikit-learn's.")
    # the largest eta0 whose steps the caps leave as they are
    room = min(after / before for _, before, after in cut)
    limit = schedule.cap_limit(room, asked, m, est.eta0)
    warn_user(f"{head} {cap_advice(est, state, m, limit)} (See the user guide, "
               "'Batch size and step size'.)", StepCapWarning, source=est)

def cap_advice(est, state, batch_size, limit):
    """What would let the steps asked for be taken, from what sets the cap:
    a smaller rate always (``limit``: the largest ``eta0`` the caps leave
    as it is, for a constant rate after 'optimal'); a few rows far longer
    than the rest (outliers, which standardising does not shrink); long
    rows of dense data (features far from unit scale). Sparse or
    normalised rows (text) get no advice to scale features: theirs
    already are."""
    tips = [get_schedule(est.learning_rate).cap_tip(limit)]
    if batch_size > 1:
        tips.append("a smaller batch_size")
    advice = "To take the steps asked for, use " + " or ".join(tips) + "."
    _, l_max, _, _ = state.smoothness
    mean = state.lam_trace or 0.0
    if mean > 0.0 and l_max > 10.0 * mean:
        advice += (f" A few rows set this limit: the longest has |x|^2 = {l_max:.3g}, "
                   f"the mean is {mean:.3g} (times sample_weight); check them for "
                   "outliers.")
    elif state.intercept_decay == 1.0 and mean > 10.0 * state.n_features:
        advice += (f" The rows are long (mean |x|^2 = {mean:.3g} over "
                   f"{state.n_features} features): scaling the features (e.g. "
                   "StandardScaler) lengthens the steps the cap allows.")
    return advice
