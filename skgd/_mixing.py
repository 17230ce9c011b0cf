"""Iterative parameter mixing, wherever its rounds run.

A data-parallel fit splits the rows into shards; every round each shard
runs compiled SGD passes from the same state over its own rows, and the
states are mixed, weighted by rows (:meth:`skgd._engine.EngineState.mix`).
The epochs are driven by the estimator's own epoch loop (its ``tol`` rule,
one-vs-rest per-class stopping, the 'adaptive' schedule, divergence
checks): :class:`MixingPass` has the interface of :class:`skgd._engine.Pass`.

Where a round runs is a ``run`` object with ``est`` (the estimator whose
parameters the shards train with), ``submit(fn, *args, name=...)``
(returns a future; futures among ``args`` stand for their results) and
``gather(futures, what)`` (the results, in order; raises a task's own
exception). ``skgd.dask`` runs rounds on the workers of a Dask cluster,
:class:`skgd.DataParallel` on threads of one process.
"""

import operator

import numpy as np
from sklearn.base import clone

from . import _engine
from . import _kernels as K
from ._base import BaseMinibatchSGD
from ._training import Trainer, largest_weights
from .schedules import get_schedule


def training_copy(wrapper_name, estimator, fitted):
    """The estimator a data-parallel ``fit`` trains: a clone of
    ``estimator``, or with ``warm_start`` the last trained model ``fitted``
    given the parameters of ``estimator`` as they are now (as the
    estimator's own warm-started ``fit``), checked."""
    import copy

    est = clone(estimator)
    if (getattr(est, "warm_start", False) and fitted is not None
            and type(fitted) is type(est)):
        params = est.get_params(deep=False)
        est = copy.deepcopy(fitted)
        est.set_params(**params)
    if not isinstance(est, BaseMinibatchSGD):
        raise TypeError(
            f"{wrapper_name} trains skgd estimators (MinibatchSGDClassifier, "
            f"MinibatchSGDRegressor); got {type(estimator).__name__}."
        )
    Trainer(est).check()
    if est.early_stopping:
        raise ValueError(
            f"{wrapper_name} does not support early_stopping=True: the validation "
            "split would have to be scored after every mix. Hold out a "
            "validation set yourself and score estimator_ on it."
        )
    if not get_schedule(est.learning_rate).mixable:
        # its measured rate (reach and gradient sum) is not mixed yet
        raise ValueError(
            f"{wrapper_name} does not support learning_rate='auto' yet: the rate it "
            "measures on each shard is not combined at a mix. Use another "
            "learning_rate, or fit 'auto' in one process."
        )
    return est


def shipped_estimator(est):
    """What the shards need of ``est``: its parameters, classes and width
    (not a warm start's trained state)."""
    out = clone(est)
    for name in ("classes_", "n_features_in_"):
        if hasattr(est, name):
            setattr(out, name, getattr(est, name))
    return out


class Shard:
    """A shard's rows: ``X[rows]`` of validated, encoded training arrays
    (``rows`` index the arrays: a shard of in-memory data copies nothing)."""

    def __init__(self, X, Y, sample_weight, report, rows=None):
        self.X = X
        self.Y = Y
        self.sample_weight = sample_weight
        self.rows = np.arange(X.shape[0], dtype=np.int64) if rows is None else rows
        self.report = report


def shard_report(est, X, Y, sample_weight, out_weight, rows):
    """What the fit's starting state needs to know of a shard: its rows,
    the smoothness the step caps read and the intercept's decay (measured
    as ``fit`` measures them, see ``Trainer.see_data``), its output weights and
    total sample weight."""
    trainer = Trainer(est)
    probe = trainer.new_state(trainer.n_outputs(), X.shape[1], X.dtype, for_fit=True)
    trainer.see_data(probe, X, rows, largest_weights(sample_weight, Y, out_weight),
                     trainer.plan().loss)
    return {"n_rows": rows.size, "smoothness": probe.smoothness,
            "intercept_decay": probe.intercept_decay, "lam_trace": probe.lam_trace,
            "out_weight": out_weight, "weight": float(sample_weight[rows].sum())}


class Shards:
    """The shards of a fit (futures of :class:`Shard` on a cluster, the
    shards themselves in one process) and what each reported."""

    def __init__(self, workers, futures, reports):
        self.workers = workers
        self.futures = futures
        self.reports = reports
        self.rows = np.array([r["n_rows"] for r in reports], dtype=np.int64)
        self.n_rows = int(self.rows.sum())


def start_state(est, dtype, n_features, reports):
    """The fit's starting state, with the data's smoothness and intercept
    decay from the shards' reports, as ``Trainer.run_epochs`` prepares it:
    ``(state, plan, hyper, out_weight)``."""
    trainer = Trainer(est)
    dtype = dtype if dtype in (np.float32, np.float64) else np.float64
    state = trainer.fit_start(n_features, dtype)
    # The caps must hold on every shard's rows: the largest curvature of
    # any (an upper bound of the whole data's, whose covariance is the
    # row-weighted mean of theirs); the intercept's decay is the majority's.
    for r in reports:
        state.see_data(r["smoothness"])
    traces = [r["lam_trace"] for r in reports if r["lam_trace"] is not None]
    state.lam_trace = max(traces) if traces else None
    state.intercept_decay = max(reports, key=lambda r: r["n_rows"])["intercept_decay"]
    plan = trainer.plan()
    state.conform(plan.rule)
    hyper = trainer.hyper(state, plan, sum(r["n_rows"] for r in reports))
    trainer.warn_if_capped(state, hyper)
    out_weight = trainer.problem_weights(state, reports[0]["out_weight"])
    return state, plan, hyper, out_weight


def shard_seed(seed, i):
    """Shard ``i``'s shuffling seed: shard 0 shuffles as ``fit`` does."""
    if i == 0:
        return seed
    return int((seed + i * 0x9E3779B1) % np.iinfo(np.int32).max)


class MixingPass:
    """The epoch of a data-parallel fit, with the interface of
    :class:`skgd._engine.Pass`: ``run`` trains ``state`` in place (every
    shard over its own rows, mixed every ``mix_every`` epochs) and returns
    the objective sums of all rows."""

    def __init__(self, run, data, state, hyper, out_weight, mix_every):
        self.run_ = run
        self.data = data
        self.state = state
        self.hyper = np.array(hyper, dtype=np.float64)
        self.out_weight = out_weight
        self.mix_every = mix_every
        self.local = None  # the shards' states (futures) between mixes
        self.epoch = 0
        self.n_mixes = 0
        self.seeds = [shard_seed(state.shuffle_seed, i) for i in range(len(data.workers))]

    def set_eta0(self, eta0):
        self.hyper[K.H_ETA0] = eta0

    def loss_failure(self):
        return None  # a shard raises its loss's failure itself

    def run(self):
        self.epoch += 1
        run = self.run_
        if self.local is None:  # a round starts from the mixed state
            start = self.state.copy()
            starts = [(start, seed) for seed in self.seeds]
        else:
            starts = [(s, None) for s in self.local]
        # copies: the epoch loop writes both between epochs
        hyper = self.hyper.copy()
        out_weight = None if self.out_weight is None else self.out_weight.copy()
        out = [run.submit(shard_epoch, data, st, seed, hyper, out_weight, run.est,
                          name="epoch")
               for data, (st, seed) in zip(self.data.futures, starts, strict=True)]
        what = f"epoch {self.epoch}"
        if self.epoch % self.mix_every == 0:
            results = run.gather(out, what)
            self._mix([r[0] for r in results])
            sums = [r[1] for r in results]
        else:
            self.local = [run.submit(operator.itemgetter(0), f, name="state") for f in out]
            sums = run.gather([run.submit(operator.itemgetter(1), f, name="sums")
                               for f in out], what)
        return np.sum(sums, axis=0)

    def finish(self):
        """Mix what the shards ran since the last mix."""
        if self.local is not None:
            self._mix(self.run_.gather(self.local, "the last mix"))

    def _mix(self, states):
        self.state.mix(states, self.data.rows)
        self.local = None
        self.n_mixes += 1


def shard_epoch(shard, state, seed, hyper, out_weight, est):
    """One epoch over a shard's rows from ``state`` (copied): the new state
    and the objective sums (see ``skgd._engine.Pass.run``)."""
    state = state.copy()
    if seed is not None:
        state.shuffle_seed = seed
    hyper = _engine.Hyper(*hyper)
    hyper = hyper._replace(batch_size=min(hyper.batch_size, max(shard.rows.size, 1)))
    trainer = Trainer(est)
    plan = trainer.plan()
    prepared = _engine.Pass(state, shard.X, shard.Y, shard.sample_weight, shard.rows, hyper,
                            plan.rule, plan.spec, plan.params, est.shuffle,
                            out_weight=out_weight)
    sums = prepared.run()
    trainer.raise_loss_failure(prepared, plan)
    return state, sums
