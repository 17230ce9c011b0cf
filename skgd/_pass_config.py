"""What an estimator keeps between training calls, and what a pass of its
parameter setting is made of.

:class:`Training` is the estimator's one private attribute: the trained
state and what is derived from the parameters. :class:`PassConfig` builds,
from the parameters and the data seen, what every compiled pass needs: the
plan (the loss, its kernel form, the update rule), the run-time
hyper-parameters with the step caps, and how a pass splits across threads.
:class:`skgd._training.Trainer` runs the passes.
"""

from collections import namedtuple

import numpy as np
from sklearn.utils import check_random_state

from . import _engine, _threads
from . import _smoothness as smoothness
from ._step_caps import cap_at, warn_if_capped
from .schedules import get_schedule

# Built-in losses whose step stays capped at batch_size=1 although the
# uncapped steps cannot diverge: modified Huber's oscillate across its
# quadratic zone, and scikit-learn's own run fails check_classifiers_train
# (see skgd.losses.ModifiedHuber).
_ALWAYS_CAPPED = frozenset({"modified_huber"})

_Plan = namedtuple("_Plan", "loss spec params rule optimal_init")


def average_of(est):
    """``average`` as training uses it: 'auto' always averages (weights
    growing as t^2 are part of its rule, see skgd._kernels.auto_rate);
    an int still says when its averaging begins (see
    :meth:`skgd.schedules.Schedule.average`)."""
    return get_schedule(est.learning_rate).average(est.average)


class Training:
    """What an estimator keeps between training calls: its one private
    attribute (``_training``), beside its parameters and fitted attributes.

    Attributes
    ----------
    state : EngineState or None
        The trained model (None before the first training call).
    checked : tuple or None
        ``(for_partial_fit, parameter values, token)`` of the last successful
        parameter check; ``token`` names that parameter setting for the
        caches below.
    plan, hyper : tuple or None
        The plan and the run-time hyper-parameters of that setting (caches).
    cap_warned : object
        The token of the setting a stream was last warned about the caps for.
    needs_cap : bool
        Whether scikit-learn's uncapped per-sample steps diverged on this
        model, so that its stream stays under the caps.
    averaged, intercept_out, coef_out, coef_view
        What the last training call published (see the "fitted weights"
        section of skgd._base).
    coef_assigned : bool
        Whether ``coef_out`` was assigned by the user (not the array handed
        out, which may only have been written in place).
    intercept_array : ndarray or None
        The array published as ``intercept_``: another one there was
        assigned (None: not known, as in models saved before it was kept).
    """

    _CACHES = ("checked", "plan", "hyper", "cap_warned")

    def __init__(self):
        self.state = None
        self.checked = None
        self.plan = None
        self.hyper = None
        self.cap_warned = None
        self.needs_cap = False
        self.averaged = False
        self.intercept_out = None
        self.coef_out = None
        self.coef_view = None
        self.coef_assigned = False
        self.intercept_array = None

    @property
    def token(self):
        return None if self.checked is None else self.checked[2]

    def copy(self):
        """A shallow copy: the same state object, its own fields."""
        new = Training.__new__(Training)
        new.__dict__.update(self.__dict__)
        return new

    def __getstate__(self):
        # compiled objects and tokens: rebuilt, and checked again, on demand
        return {k: v for k, v in self.__dict__.items() if k not in self._CACHES}

    def __setstate__(self, saved):
        self.__init__()
        self.__dict__.update(saved)


class PassConfig:
    """What the passes of ``est``'s parameter setting are made of (the
    configuration half of :class:`skgd._training.Trainer`)."""

    def __init__(self, est):
        self.est = est
        self.memo = est._memo()

    def plan(self):
        """What every pass of this configuration needs, built once per
        parameter setting (a stream pays for it on its first call): the loss,
        its kernel form and parameters, the update rule, and 'optimal''s t0.
        """
        est = self.est
        fingerprint = self.memo.token
        cached = self.memo.plan
        if cached is not None and cached[0] is fingerprint:
            return cached[1]
        loss = est._loss_object()
        loss.check_params()
        _, l1 = _engine.penalty_strengths(est.penalty, est.alpha, self.l1_ratio())
        t0 = self.schedule().t0(est.alpha, loss)
        plan = _Plan(
            loss=loss,
            spec=_engine.loss_spec(loss),
            params=loss.params(),
            rule=_engine.make_rule(clip_value=est.clip_value, clip_norm=est.clip_norm,
                                   momentum=est.momentum, nesterov=est.nesterov, l1=l1,
                                   average=self.average()),
            optimal_init=t0,
        )
        self.memo.plan = (fingerprint, plan)
        return plan

    def schedule(self):
        """The :class:`~skgd.schedules.Schedule` of ``learning_rate``."""
        return get_schedule(self.est.learning_rate)

    def average(self):
        """``average`` as training uses it (see :func:`average_of`)."""
        return average_of(self.est)

    def l1_ratio(self):
        est = self.est
        return est.l1_ratio if est.l1_ratio is not None else 0.0

    def scikit_learns_algorithm(self, plan, batch_size, capped=True):
        """Whether a run takes scikit-learn's steps: per sample, a built-in
        loss whose step cap cannot bind (or, ``capped=False``, is off: see
        :meth:`uncapped_first`), no clipping, no momentum. Such a run stops
        by scikit-learn's ``tol`` rule (the unweighted loss along the
        epoch); any other watches the weighted objective it minimises,
        since its steps differ from those scikit-learn's rule was made for
        (under strong class weights the unweighted loss of capped or clipped
        steps can rise while the weighted objective falls)."""
        est = self.est
        rule, loss = plan.rule, plan.loss
        return (batch_size == 1 and isinstance(est.loss, str)
                and (not capped or not loss.curvature or loss.per_sample_floor)
                and rule.clip_value is None and rule.clip_norm is None
                and rule.momentum is None)

    def uncapped_first(self, plan):
        """Whether a run at ``batch_size=1`` takes scikit-learn's uncapped
        steps first, and the capped ones only if those diverge.

        The hard caps of squared-type losses (skgd._smoothness) keep every
        step within half the stability limit of the worst row, ``1 / (L_w(1)
        + L_b(1))``: far below what per-sample steps stand in practice (on
        standardised abalone the cap is 0.0017; scikit-learn's constant
        steps train up to about 0.1 and diverge from 0.3, near ``2 /
        lambda_max`` = 0.30, not ``2 / l_max`` = 0.0036). No cheap bound
        tells the steps that diverge from those that do not, so such a run
        tries scikit-learn's and falls back to the caps when they diverge
        (:meth:`run_epochs`). The others keep their caps: minibatches
        (what makes the defaults robust to ``batch_size``), 'auto' (its
        own), clipping and momentum (not scikit-learn's algorithm), user
        losses (their curvature asks for the cap), modified Huber
        (``_ALWAYS_CAPPED``)."""
        est = self.est
        loss = plan.loss
        return (est.batch_size == 1 and bool(loss.curvature) and not loss.per_sample_floor
                and isinstance(est.loss, str) and est.loss not in _ALWAYS_CAPPED
                and self.schedule().uncapped_first
                and self.scikit_learns_algorithm(plan, 1, capped=False))

    def warn_if_capped(self, state, hyper, diverged=None, stream=False):
        """Say which steps the caps shorten (see
        :func:`skgd._step_caps.warn_if_capped`)."""
        warn_if_capped(self.est, self.memo, state, hyper, diverged, stream)

    def rule(self, state, plan):
        """The update rule of a pass: the plan's, and with 'auto' on dense
        data (as the first data decided: see :meth:`see_data`) momentum of
        at most ``AUTO_MOMENTUM`` for the steps the cap shortens. On sparse
        data 'auto' takes none: momentum moves every weight at every step."""
        return self.schedule().rule(plan.rule, dense=state.intercept_decay == 1.0)

    def hyper(self, state, plan, n_rows, online=False, capped=None):
        """The run-time hyper-parameters of a pass (the state must have seen
        data: see :meth:`see_data`). ``capped``: True with the step caps,
        False without them; None (the default): without them where
        :meth:`uncapped_first` holds and they would not shorten the first
        step (the same steps, stopped by scikit-learn's rule), else with
        them."""
        est = self.est
        if capped is None:
            hyper = self.hyper(state, plan, n_rows, online, capped=True)
            if self.uncapped_first(plan) and not cap_at(hyper, state.t)[3]:
                return self.hyper(state, plan, n_rows, online, capped=False)
            return hyper
        # a batch larger than the data is the whole data
        batch_size = min(est.batch_size, max(n_rows, 1))
        # A stream's calls mostly need the same values: reuse them while
        # the parameters (their check's token) and what the state adds are
        # unchanged.
        token = self.memo.token
        key = (token, batch_size, online, state.eta, state.smoothness,
               state.intercept_decay, state.row_sq, state.coef.dtype)
        cached = self.memo.hyper
        if token is None or cached is None or cached[0] != key:
            cached = self.memo.hyper = (key, {})
        if capped in cached[1]:
            return cached[1][capped]
        loss = plan.loss
        hyper = cached[1][capped] = _engine.make_hyper(
            schedule=self.schedule(),
            alpha=est.alpha,
            eta0=state.eta,
            power_t=est.power_t,
            optimal_init=plan.optimal_init,
            penalty=est.penalty,
            l1_ratio=self.l1_ratio(),
            fit_intercept=est.fit_intercept,
            batch_size=batch_size,
            average=self.average(),
            dtype=state.coef.dtype,
            curvature=loss.curvature if capped else None,
            per_sample_floor=loss.per_sample_floor,
            smoothness=state.smoothness,
            weighted_objective=not self.scikit_learns_algorithm(plan, batch_size, capped),
            intercept_decay=state.intercept_decay,
            row_sq=state.row_sq,
            online=online,
        )
        return hyper

    def shuffle_seed(self):
        """One draw from random_state seeds every shuffle of a state, as
        scikit-learn's SGD seeds its per-call shuffles."""
        est = self.est
        return check_random_state(est.random_state).randint(np.iinfo(np.int32).max)

    def new_state(self, n_outputs, n_features, dtype, coef_init=None, intercept_init=None,
                   average_init=None, *, for_fit=False):
        est = self.est
        # fit draws the seed after its validation split (see fit_state), as
        # scikit-learn does: a RandomState instance then gives its split
        seed = 0 if for_fit else self.shuffle_seed()
        # a new model: its steps are not known to need the cap (see
        # uncapped_first), and it has not been warned about
        self.memo.needs_cap = False
        self.memo.cap_warned = None
        return _engine.EngineState(n_outputs, n_features, dtype, shuffle_seed=seed,
                                   eta0=est.eta0, outputs=est._outputs(),
                                   coef_init=coef_init, intercept_init=intercept_init,
                                   average_init=average_init)

    def see_data(self, state, X, rows, sample_weight, loss):
        """Update the data's smoothness behind the step caps (skgd._smoothness).

        Skipped where the caps cannot bind: a loss without a curvature bound,
        or per-sample steps (``batch_size=1``) of a loss whose caps never go
        below one per-sample step. Otherwise the ``l_max`` values and the
        intercept's ``lam`` come from every chunk of data. The weights' ``lam``
        (an eigenvalue) is estimated again whenever a chunk's rows are larger
        on average than those it was last estimated on (a stream that starts
        with empty chunks, or whose features grow), so the caps follow the
        data a stream actually brings; otherwise a chunk costs one pass over
        its non-zeros here.
        """
        est = self.est
        if state.intercept_decay is None:  # decided by the first data, then kept
            state.intercept_decay = _engine.sparse_intercept_decay(X)
        schedule = self.schedule()
        if schedule.reads_row_sq:  # the scale of its gradients ('auto')
            state.row_sq = max(state.row_sq, smoothness.mean_row_sq(X, rows))
        if not schedule.measures_smoothness(loss, est.batch_size):
            return
        chunk, trace = smoothness.estimate_with_trace(
            X, rows, sample_weight, est.fit_intercept, lam_w=state.smoothness[0])
        if state.lam_trace is None or trace > state.lam_trace:
            # larger rows than lam_w was estimated on: estimate it again
            chunk = chunk._replace(lam_w=smoothness.largest_eigenvalue(X, rows, sample_weight))
            state.lam_trace = trace
        state.see_data(chunk)

    def output_parts(self, state, X, rows, hyper, rule):
        """How a pass splits its outputs across threads (``n_jobs``): slices
        of the outputs, or None for one pass on the caller's thread.

        Only one-vs-rest problems split, where each output's steps are its
        own (see ``skgd._threads.splittable``), so that the model is the one
        pass's whatever ``n_jobs`` is; and only into parts with work enough
        to pay for a thread (``skgd._threads.most_parts``). Binary models,
        multinomial ones and regressors have one problem whose outputs
        step together: they stay whole.
        """
        est = self.est
        if not (est._per_output_problems(state) and _threads.splittable(hyper, rule)):
            return None
        most = _threads.most_parts(X, rows, state.n_outputs)
        n_parts = min(most, est._n_threads()) if most > 1 else 1
        return _threads.output_parts(state.n_outputs, n_parts) if n_parts > 1 else None

    def problem_weights(self, state, out_weight):
        """The output weights a pass reads, ones by default in one-vs-rest:
        the epoch loop writes a stopped class's to zero (see
        :meth:`epoch_loop`)."""
        est = self.est
        if est._per_output_problems(state) and out_weight is None:
            return np.ones((state.n_outputs, 2))
        return out_weight
