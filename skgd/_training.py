"""The training driver: one prepare-and-run path behind ``fit``,
``partial_fit`` and both data-parallel wrappers.

A :class:`Trainer` reads an estimator's parameters and trains an
:class:`skgd._engine.EngineState` with them: with what its configuration
half builds (:class:`skgd._pass_config.PassConfig`: the plan, the run-time
hyper-parameters, the step caps' view of the data) it runs the compiled
passes epoch by epoch under the stopping rules (:mod:`skgd._stopping`) and
checks each pass for divergence (:mod:`skgd._step_caps`). What it keeps
between calls lives in the estimator's one private attribute, a
:class:`skgd._pass_config.Training`.

The estimators keep scikit-learn's API: validation, the encoding of targets
and the publishing of fitted attributes. They answer the driver through a
few hooks (``_loss_object``, ``_outputs``, ``_per_output_problems``,
``_n_threads``, ``_problem_scores``, ``_score_scores``, ``_state_scores``,
``_is_classifier_like``, ``_adopt_writes``).
"""

import warnings

import numpy as np
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning

from . import _engine, _report
from ._pass_config import PassConfig
from ._step_caps import (
    Diverged,
    RetryCapped,
    blowup_level,
    cap_at,
    cap_holds_decay,
    check_blowup,
    check_finite,
)
from ._stopping import (
    BestEpoch,
    StoppingRule,
    patience_epochs,
    snapshot_scores,
    validation_split,
)
from .losses import MulticlassLoss
from .schedules import get_schedule

_TINY = float(np.finfo(float).tiny)


class Trainer(PassConfig):
    """Trains an :class:`~skgd._engine.EngineState` with the parameters of
    ``est`` (a skgd estimator whose parameters were checked this call)."""

    # ------------------------------------ for the data-parallel wrappers

    def check(self):
        """Check the estimator's parameters (cheap when they did not change)."""
        self.est._check_params()

    def n_outputs(self):
        """The engine's outputs for the estimator's problem (``classes_`` set)."""
        est = self.est
        return est._n_outputs(est.classes_.size) if is_classifier(est) else 1

    def class_weights(self, classes, y):
        """The weight of each class as ``fit`` computes it (None without
        ``class_weight``)."""
        return self.est._class_weights(classes, y, False)

    def validated(self, X, y):
        """X and y validated as ``fit`` validates them (setting
        ``n_features_in_``)."""
        return self.est._validate_X(X, y, reset=True, y_numeric=not is_classifier(self.est))

    def training_arrays(self, X, y, sample_weight, class_weights):
        """``(X, Y, sample_weight, out_weight)``: a block of validated data
        encoded as ``fit`` encodes it (``classes_`` and ``n_features_in_``
        set beforehand)."""
        return self.est._block_arrays(X, y, sample_weight, class_weights)

    def fit_start(self, n_features, dtype):
        """The starting state of a ``fit`` (a warm start's published model
        when ``warm_start`` asks for one), seeded for its shuffles."""
        n_out = self.n_outputs()
        inits = self.est._init_arrays(n_out, n_features, None, None)
        state = self.new_state(n_out, n_features, dtype, *inits, for_fit=True)
        state.shuffle_seed = self.shuffle_seed()
        return state

    def publish(self, state, n_iter, curve, stacklevel):
        """End a ``fit``: scikit-learn's convergence warning (``stacklevel``
        as the caller's), then the fitted attributes."""
        self.warn_if_not_converged(n_iter, stacklevel + 1)
        self.est._commit(state, n_iter, curve, incremental=False)

    @staticmethod
    def raise_loss_failure(prepared, plan):
        """Raise what a user's loss raised inside the compiled pass (where it
        can only return NaN, see skgd.losses), or say it gave NaN or inf for
        finite scores. A non-finite score is divergence, reported next."""
        failure = prepared.loss_failure()
        if failure is None or not np.isfinite(failure[0]):
            return
        score, target, _ = failure
        loss = plan.loss
        where = f"at score {score!r} and target {target!r}"
        if isinstance(loss, MulticlassLoss):
            raise ValueError(
                f"The loss {loss!r} raised an exception or returned NaN or infinity "
                f"for a row of class index {int(target)}, with finite scores."
            )
        for fn in (type(loss).loss, type(loss).dloss):
            try:
                fn(score, target, *plan.params)
            except Exception as exc:
                exc.add_note(f"(raised by {loss!r} while training, {where})")
                raise
        raise ValueError(
            f"The loss {loss!r} returned NaN or infinity {where}: a loss and its "
            "derivative must be finite wherever the score is."
        )

    def run_epochs(self, X, Y, sample_weight, state, plan, *, rows, max_epochs,
                    validation=None, out_weight=None):
        """The epoch driver: shuffle, one compiled pass, stopping rules.

        Each problem (each class in one-vs-rest, else the whole model) stops
        on its own, as in scikit-learn: a stopped class's derivatives get
        weight zero in the passes that go on for the others, and its weights
        as they were when it stopped are put back at the end. With a
        validation set, training ends as it was after its best epoch (see
        :meth:`epoch_loop`).

        Where the step caps would shorten scikit-learn's per-sample steps
        (:meth:`uncapped_first`), the run takes them uncapped; if that
        diverges, it starts again from the same state under the caps, and
        says so (:meth:`warn_if_capped`). Diverging runs mostly do so in
        their first epoch: that epoch is the price.

        Returns
        -------
        n_iter : int
            Epochs run (the largest over the problems).
        curve : list of float
            The training objective per epoch (summed over the problems).
        val_scores : list of float
        """
        est = self.est
        rule, hyper = self.prepare(state, X, Y, sample_weight, rows, out_weight, plan)
        diverged = None
        if self.uncapped_first(plan) and cap_at(hyper, state.t)[3]:
            start = state.copy()
            weights = None if out_weight is None else out_weight.copy()
            try:
                return self.run_pass_epochs(
                    X, Y, sample_weight, state, plan, rule,
                    self.hyper(state, plan, rows.size, capped=False), rows=rows,
                    max_epochs=max_epochs, validation=validation, out_weight=out_weight,
                    blowup=blowup_level(Y, rows, state))
            except Diverged as exc:
                diverged = exc
                state.restore(start)
                out_weight = weights
                self.memo.needs_cap = True  # and so does a stream from here
                if est.verbose:
                    print(f"-- Diverged in epoch {exc.epoch} ({exc.what}): "
                          "training again under the step cap")
        self.warn_if_capped(state, hyper, diverged)
        return self.run_pass_epochs(X, Y, sample_weight, state, plan, rule, hyper, rows=rows,
                                     max_epochs=max_epochs, validation=validation,
                                     out_weight=out_weight)

    def prepare(self, state, X, Y, sample_weight, rows, out_weight, plan, *, online=False,
                capped=None):
        """Make ``state`` ready for passes over ``X[rows]``: the rate starts
        at ``eta0``, the step caps see the data, the state takes the update
        rule's arrays. Returns ``(rule, hyper)``: the rule and the run-time
        hyper-parameters (``online``, ``capped``: see :meth:`hyper`)."""
        self.restart_rate(state)
        self.see_data(state, X, rows, largest_weights(sample_weight, Y, out_weight),
                      plan.loss)
        rule = self.rule(state, plan)
        state.conform(rule)
        return rule, self.hyper(state, plan, rows.size, online, capped)

    def run_checked(self, prepared, plan, state, epoch, per_output, blowup=None):
        """Run ``prepared`` (a pass over ``state``) once and check it: what a
        user's loss raised is raised as it was, and divergence (a non-finite
        or exploding state, a mean objective above ``blowup``) as
        :class:`~skgd._step_caps.Diverged` at ``epoch``. Returns each
        problem's mean objective (see :func:`mean_objectives`)."""
        norm_before = state.squared_norm()
        sums = prepared.run()
        self.raise_loss_failure(prepared, plan)
        objectives = mean_objectives(sums, per_output)
        check_finite(state, objective_total(objectives), epoch, full=False,
                     norm_before=norm_before)
        check_blowup(objectives, epoch, blowup)
        return objectives

    def run_pass_epochs(self, X, Y, sample_weight, state, plan, rule, hyper, *, rows,
                         max_epochs, validation, out_weight, blowup=None):
        """The epochs of :meth:`run_epochs` with the run-time values ``hyper``."""
        est = self.est
        out_weight = self.problem_weights(state, out_weight)
        with _engine.prepare_pass(state, X, Y, sample_weight, rows, hyper, rule, plan.spec,
                                  plan.params, est.shuffle,
                                  parts=self.output_parts(state, X, rows, hyper, rule),
                                  out_weight=out_weight, verbose=bool(est.verbose),
                                  threads=est._n_threads()) as prepared:
            return self.epoch_loop(state, plan, prepared, hyper, n_rows=rows.size,
                                    max_epochs=max_epochs, validation=validation,
                                    out_weight=out_weight, blowup=blowup)

    def epoch_loop(self, state, plan, prepared, hyper, *, n_rows, max_epochs,
                    validation=None, out_weight=None, blowup=None):
        """The epochs of :meth:`run_epochs` over a prepared pass: run it,
        check it, apply the stopping rules.

        ``prepared`` is an :class:`_engine.Pass`, or anything with its
        ``run``, ``loss_failure`` and ``set_eta0`` that trains ``state`` in
        place (the parameter-mixing pass of ``skgd.dask`` and
        ``skgd.DataParallel``, ``skgd._mixing``, runs each epoch on workers and
        brings the state up to date in a ``finish`` called once after the
        last epoch, before the best epoch or the stopped classes are put
        back); ``out_weight``
        is the array it reads, written here when a class stops. Returns
        what :meth:`run_epochs` returns. ``blowup``: a mean objective
        above which a problem counts as diverged (:func:`skgd._step_caps.check_blowup`).

        Given a ``validation`` set, the state ends as it was after the epoch
        whose model scored best on it (see :class:`skgd._stopping.BestEpoch`), not after
        the last epoch: the whole training state (weights, averages,
        velocity, L1 ledger, clock), so ``t_`` and a later ``partial_fit``
        go on from it, with the one-vs-rest classes that had stopped by then
        as they stopped. The epochs after it still count in ``n_iter``, the
        curve and the scores, as in scikit-learn.
        """
        est = self.est
        per_output = est._per_output_problems(state)
        base_weight = None if out_weight is None else out_weight.copy()
        n_problems = state.n_outputs if per_output else 1
        rule = StoppingRule(n_problems, est.tol, patience_epochs(
            est.n_iter_no_change, n_rows, int(hyper.batch_size)))
        rates = np.full(n_problems, state.eta)
        schedule = get_schedule(est.learning_rate)

        def lower_rate(k):
            lowered = schedule.lower(rates[k])
            if lowered is None:
                return False
            rates[k] = lowered
            return True

        latest = np.zeros(n_problems)
        t_end = state.t + max_epochs * n_rows
        frozen = {}
        best = BestEpoch()
        curve, val_scores = [], []
        clock = _report.TrainingClock()
        for epoch in range(1, max_epochs + 1):
            objectives = self.run_checked(prepared, plan, state, epoch, per_output, blowup)
            latest[rule.active] = objectives[rule.active]
            objective = float(latest.sum())
            curve.append(objective)
            if validation is not None:
                Xv, yv, swv = validation
                scores = est._state_scores(state, Xv)
                for k, snap in frozen.items():  # stopped classes: as they will be
                    scores[:, k] = snapshot_scores(Xv, snap, est._averaged(state))
                val_scores.append(est._score_scores(scores, yv, swv))
                current = -(est._problem_scores(scores, yv, swv) if per_output
                            else np.array([val_scores[-1]]))
                best.see(epoch, val_scores[-1], state, frozen)
            else:
                # scikit-learn's criterion: the mean over the rows of loss
                # plus penalty, each at the weights the row saw
                current = objectives
            if est.verbose:
                print(_report.epoch_line(epoch, objective, state, cap_at(hyper, state.t)[1],
                                         clock.training(),
                                         val_scores[-1] if validation is not None else None))
            held = cap_holds_decay(hyper, state.t, t_end)
            for k in rule.update(epoch, current, lower_rate, hold=held):
                if per_output:
                    frozen[k] = state.snapshot_output(k)
                    out_weight[k] = 0.0
            if rule.done:
                break
            if schedule.lowers_rate and rates[rule.active].max() != state.eta:
                # the classes share the step of L2 decay (the fastest active
                # class's); each one's gradient steps at its own rate
                state.eta = float(rates[rule.active].max())
                prepared.set_eta0(state.eta)
                if per_output:
                    active = rule.active
                    out_weight[active] = base_weight[active] * (rates[active] / state.eta)[:, None]
        finish = getattr(prepared, "finish", None)  # (the mixing pass)
        if finish is not None:
            finish()
        if best.state is not None:
            best.put_back(state)
        elif frozen:
            state.restore_outputs(frozen)
        n_iter = int(rule.n_iter.max())
        if est.verbose:
            print(_report.stop_line(
                n_iter, clock.training(), converged=rule.done, tol=est.tol,
                patience=rule.patience, early_stopping=validation is not None,
                class_epochs=rule.n_iter.tolist() if per_output else None,
                best_epoch=best.epoch if best.state is not None else None,
                compiling=clock.compiling()))
        return n_iter, curve, val_scores

    def fit_state(self, X, Y, sample_weight, state, stratify, out_weight=None):
        """Full training of ``fit``: split, epochs, convergence warning."""
        est = self.est
        n = X.shape[0]
        rows = np.arange(n, dtype=np.int64)
        X = _engine.narrow_indices(X)
        validation = None
        if est.early_stopping:
            rows, val = validation_split(est, n, stratify, sample_weight)
            validation = (X[val], stratify[val], sample_weight[val])
        state.shuffle_seed = self.shuffle_seed()
        n_iter, curve, val_scores = self.run_epochs(
            X, Y, sample_weight, state, self.plan(), rows=rows, max_epochs=est.max_iter,
            validation=validation, out_weight=out_weight,
        )
        self.warn_if_not_converged(n_iter, stacklevel=4)
        return n_iter, curve, val_scores

    def warn_if_not_converged(self, n_iter, stacklevel):
        """scikit-learn's ConvergenceWarning when ``fit`` ran all its epochs."""
        est = self.est
        if est.tol is not None and n_iter == est.max_iter:
            warnings.warn(
                "Maximum number of iteration reached before convergence. Consider "
                "increasing max_iter to improve the fit.",
                ConvergenceWarning,
                stacklevel=stacklevel,
            )

    def partial_state(self, X, Y, sample_weight, state, undo, out_weight=None):
        """One pass over a chunk, in place; what it changes is recorded in
        ``undo`` (a list the caller rolls back if the call fails).

        As in ``fit`` (:meth:`run_epochs`), a pass whose steps the caps
        would shorten takes scikit-learn's uncapped steps; if they diverge,
        the pass is undone and runs again under the caps, as do the
        stream's later calls."""
        plan = self.plan()
        try:
            return self.partial_pass(X, Y, sample_weight, state, undo, plan, out_weight,
                                      capped=self.memo.needs_cap)
        except RetryCapped as retry:
            undo.pop().rollback()
            self.memo.needs_cap = True
            return self.partial_pass(X, Y, sample_weight, state, undo, plan, out_weight,
                                      capped=True, diverged=retry.diverged)

    def restart_rate(self, state):
        """Start a training call at ``eta0`` as it is now, as scikit-learn
        does: a ``set_params(eta0=...)`` between ``partial_fit`` calls (or
        before a warm-started ``fit``) takes effect, and the 'adaptive'
        schedule lowers the rate within a call only."""
        est = self.est
        state.eta = float(est.eta0)

    def partial_pass(self, X, Y, sample_weight, state, undo, plan, out_weight, *, capped,
                      diverged=None):
        """The pass of :meth:`partial_state`; ``capped``: under the caps
        whatever :meth:`uncapped_first` says. Raises :class:`RetryCapped`
        when an uncapped attempt diverged."""
        est = self.est
        rows = np.arange(X.shape[0], dtype=np.int64)
        record = _engine.Undo(state)
        undo.append(record)
        est._adopt_writes(state)
        rule, hyper = self.prepare(state, X, Y, sample_weight, rows, out_weight, plan,
                                   online=True, capped=capped or None)
        attempt = not capped and self.uncapped_first(plan) and cap_at(hyper, state.t)[3]
        if attempt:
            hyper = self.hyper(state, plan, rows.size, online=True, capped=False)
        else:
            self.warn_if_capped(state, hyper, diverged, stream=True)
        parts = self.output_parts(state, X, rows, hyper, rule)
        record.prepare(X, rows, hyper, rule, parts)
        blowup = blowup_level(Y, rows, state) if attempt else None
        with _engine.prepare_pass(state, X, Y, sample_weight, rows, hyper, rule, plan.spec,
                                  plan.params, est.shuffle, parts=parts,
                                  journals=record.journals, out_weight=out_weight,
                                  verbose=bool(est.verbose),
                                  threads=est._n_threads()) as prepared:
            try:
                objectives = self.run_checked(prepared, plan, state, 1,
                                              est._per_output_problems(state), blowup)
            except Diverged as exc:
                if attempt:
                    raise RetryCapped(exc) from None
                raise
        return [objective_total(objectives)], hyper


def largest_weights(sample_weight, Y, out_weight):
    """Each row's largest weight over the outputs (sample weight times output
    weight, see ``skgd._kernels.output_weight``): what the step caps must
    allow for."""
    if out_weight is None:
        return sample_weight
    per_output = np.where(Y > 0, out_weight[:, 1], out_weight[:, 0])
    return sample_weight * per_output.max(axis=1)


def objective_total(objectives):
    """The sum of a pass's mean objectives, a float (the one objective of a
    single problem as it is: a stream's calls skip NumPy's sum)."""
    return float(objectives[0]) if objectives.shape[0] == 1 else float(objectives.sum())


def mean_objectives(sums, per_output):
    """The mean objective of each problem from a pass's ``(2, n_outputs)``
    sums (see ``skgd._engine.Pass.run``): each output's own in one-vs-rest,
    else one for the whole model."""
    if sums.shape[1] == 1:
        # One output (a binary classifier, a regressor): Python floats give
        # inf or NaN without a warning, so no np.errstate to pay for.
        return np.array([float(sums[0, 0]) / max(float(sums[1, 0]), _TINY)])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if per_output:
            return sums[0] / np.maximum(sums[1], _TINY)
        return np.array([sums[0].sum() / max(sums[1, 0], _TINY)])
