"""Train one model on the workers of a Dask cluster by parameter mixing.

:class:`DataParallel` wraps a :class:`~skgd.MinibatchSGDClassifier` or
:class:`~skgd.MinibatchSGDRegressor`. The blocks of a dask array stay on the
workers that hold them: each worker concatenates its own blocks once
(validated and encoded as ``fit`` would), then every round it runs compiled
SGD passes over its rows from the broadcast weights, and the client mixes
the workers' states, weighted by their rows (iterative parameter mixing:
McDonald, Hall & Mann 2010; Zinkevich, Weimer, Smola & Li 2010).

The epochs are driven by the estimator's own epoch loop (its ``tol`` rule,
one-vs-rest per-class stopping, the 'adaptive' schedule, divergence
checks); only the pass is distributed. On one worker a round is exactly an
epoch of ``fit``, so the result equals a plain ``fit`` on the concatenated
blocks.

Requires the extra ``skgd[dask]`` (``dask[distributed]``).
"""

import operator
import time
import uuid
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, MetaEstimatorMixin, is_classifier
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted

from . import _engine, _mixing
from ._training import Trainer

_EXTRA = ('skgd.dask needs the extra "skgd[dask]" (dask[distributed]): '
          'pip install "skgd[dask]"')

try:
    import dask
    import dask.array as da
    import distributed
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(_EXTRA) from exc

__all__ = ["DataParallel"]

# How often a wait for a round looks for failed tasks (seconds).
_POLL = 0.25


class DataParallel(MetaEstimatorMixin, BaseEstimator):
    """Train one skgd model in parallel on the workers of a Dask cluster.

    Each worker runs SGD over the blocks it holds, from the current
    weights; every ``mix_every`` epochs the client averages the workers'
    models, weighted by their numbers of rows, and the next round starts
    from the average (iterative parameter mixing). Unlike
    ``dask_ml.wrappers.Incremental``, which hands the model from block to
    block, the workers train at the same time, so more workers take less
    time per epoch. The data is never gathered to the client: only the
    model (``n_outputs x n_features`` numbers) travels, twice per round.

    Parameters
    ----------
    estimator : MinibatchSGDClassifier or MinibatchSGDRegressor
        The model to train; its parameters apply as in ``fit``: ``max_iter``
        epochs at most, the ``tol`` rule on the mixed epoch objective,
        ``shuffle`` (each worker shuffles its own rows every epoch; rows
        never move between workers), ``average``, L1, momentum, clipping.
        ``early_stopping=True`` is refused (hold out a validation set and
        score :attr:`estimator_` on it instead).
    mix_every : int, default=1
        Epochs each worker runs between two mixes. Between mixes the
        client's model is the last mix (what a one-vs-rest class that
        converges between mixes keeps).
    timeout : float or None, default=None
        Seconds to wait for the preparation of the data and for each round.
        A round that does not finish in time (a worker died with data Dask
        cannot recompute, or the cluster is stuck) raises ``TimeoutError``.
        None waits as long as the round takes; failed tasks still raise.
    workers : list of str or None, default=None
        Addresses of the workers to train on. Blocks held by other workers
        are moved to these (by Dask, worker to worker). Default: the workers
        that hold the blocks.

    Attributes
    ----------
    estimator_ : estimator
        The trained model: an ordinary fitted skgd estimator (predict,
        score, pickle, ``partial_fit`` afterwards).
    n_iter_ : int
        Epochs run.
    n_mixes_ : int
        Times the workers' models were mixed.
    worker_rows_ : dict
        Rows each worker trained on, by worker address.
    classes_ : ndarray
        The classes (classifiers only).

    Notes
    -----
    What a mix does with each part of the state (see the user guide,
    "Scaling out"):

    - weights and intercepts: the row-weighted mean of the workers';
    - averaged weights (``average=True``): the mean of every step of every
      worker since averaging began, so ``coef_`` is the mixed average;
    - momentum: velocities are averaged like the weights (the mixed model
      keeps the workers' mean direction);
    - L1: each weight's cumulative-penalty ledger is averaged too, and every
      mixed weight then pays the penalty it still owes, clipped at zero, as
      a step of the engine would: weights the workers drove to zero (or
      disagree in sign on) come out exactly zero unless the others' evidence
      outweighs that penalty; a weight zero on every worker stays zero;
    - the sample count ``t_`` (the schedules' clock) counts every worker's
      rows, as one process seeing all of them would. Within a round, each
      worker steps from the round's count.

    With one worker the mix is the worker's state itself, and a fit equals
    ``estimator.fit`` on the concatenated blocks.

    Examples
    --------
    >>> from dask.distributed import Client, LocalCluster   # doctest: +SKIP
    >>> import dask.array as da                              # doctest: +SKIP
    >>> from skgd import MinibatchSGDClassifier              # doctest: +SKIP
    >>> from skgd.dask import DataParallel                   # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=2))           # doctest: +SKIP
    >>> X = da.random.random((100_000, 20), chunks=25_000)   # doctest: +SKIP
    >>> y = (X[:, 0] > 0.5).astype(int)                      # doctest: +SKIP
    >>> model = DataParallel(MinibatchSGDClassifier(batch_size=32, max_iter=5))
    >>> model.fit(X, y).score(X, y)                          # doctest: +SKIP
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "partial_fit"])],
        "mix_every": [Interval(Integral, 1, None, closed="left")],
        "timeout": [Interval(Real, 0, None, closed="neither"), None],
        "workers": [list, None],
    }

    def __init__(self, estimator, *, mix_every=1, timeout=None, workers=None):
        self.estimator = estimator
        self.mix_every = mix_every
        self.timeout = timeout
        self.workers = workers

    # ------------------------------------------------------------- fitting

    def fit(self, X, y, classes=None, sample_weight=None):
        """Train on the cluster of the current ``dask.distributed`` client.

        Parameters
        ----------
        X : dask array or dask DataFrame of shape (n_samples, n_features)
            Dense or scipy CSR blocks, chunked along the rows.
        y : dask array or dask Series of shape (n_samples,)
        classes : array-like, default=None
            All the labels (classifiers). Default: the unique labels of y,
            computed on the cluster.
        sample_weight : dask array of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        self._validate_params()
        client = _current_client()
        est = _mixing.training_copy("DataParallel", self.estimator,
                                    getattr(self, "estimator_", None))
        X, y, sample_weight = _aligned(X, y, sample_weight)
        class_weights = None
        if is_classifier(est):
            est.classes_, class_weights = _classes_and_weights(est, y, classes)
        est.n_features_in_ = X.shape[1]
        blocks = _Blocks(client, X, y, sample_weight, self.workers)
        run = _Run(client, est, self.timeout)
        try:
            data = run.prepare(blocks, class_weights)
            state, plan, hyper, out_weight = _mixing.start_state(est, X.dtype, X.shape[1],
                                                                 data.reports)
            mixing = _mixing.MixingPass(run, data, state, hyper, out_weight, self.mix_every)
            n_iter, curve, _ = Trainer(est).epoch_loop(
                state, plan, mixing, hyper, n_rows=data.n_rows, max_epochs=est.max_iter,
                out_weight=out_weight)
        finally:
            # the workers' copies of their rows go now, not when the garbage
            # collector (or, after an error, the traceback) lets go of them
            run.release()
        Trainer(est).publish(state, n_iter, curve, stacklevel=2)
        self.estimator_ = est
        self.n_iter_ = n_iter
        self.n_mixes_ = mixing.n_mixes
        self.worker_rows_ = dict(zip(data.workers, data.rows.tolist(), strict=True))
        if is_classifier(est):
            self.classes_ = est.classes_
        return self

    # ---------------------------------------------------------- predicting

    def _apply(self, method, X, width):
        check_is_fitted(self, "estimator_")
        fn = getattr(self.estimator_, method)
        if not _is_dask(X):
            return fn(X)
        X = _as_array(X)
        if X.numblocks[1] != 1:
            X = X.rechunk({1: -1})
        if width is None:
            return X.map_blocks(fn, drop_axis=1, dtype=self._label_dtype(method),
                                meta=np.empty((0,), dtype=self._label_dtype(method)))
        return X.map_blocks(fn, chunks=(X.chunks[0], (width,)), dtype=np.float64,
                            meta=np.empty((0, 0)))

    def _label_dtype(self, method):
        if method == "predict" and hasattr(self.estimator_, "classes_"):
            return self.estimator_.classes_.dtype
        return np.float64

    def predict(self, X):
        """Predict with :attr:`estimator_`, block by block for dask input.

        Parameters
        ----------
        X : dask array, dask DataFrame, array-like or sparse matrix

        Returns
        -------
        y_pred : dask array or ndarray of shape (n_samples,)
        """
        return self._apply("predict", X, None)

    def predict_proba(self, X):
        """Class probabilities from :attr:`estimator_` (see its
        ``predict_proba``), block by block for dask input.

        Parameters
        ----------
        X : dask array, dask DataFrame, array-like or sparse matrix

        Returns
        -------
        proba : dask array or ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self, "estimator_")
        return self._apply("predict_proba", X, len(self.estimator_.classes_))

    def decision_function(self, X):
        """Scores of :attr:`estimator_`, block by block for dask input.

        Parameters
        ----------
        X : dask array, dask DataFrame, array-like or sparse matrix

        Returns
        -------
        scores : dask array or ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self, "estimator_")
        n_out = self.estimator_.intercept_.shape[0]
        if n_out == 1:
            return self._apply("decision_function", X, None)
        return self._apply("decision_function", X, n_out)

    def score(self, X, y, sample_weight=None):
        """Accuracy (classifiers) or R^2 (regressors) of :attr:`estimator_`;
        computed on the cluster for dask input.

        Parameters
        ----------
        X : dask array, dask DataFrame, array-like or sparse matrix
        y : dask array, dask Series or array-like of shape (n_samples,)
        sample_weight : dask array or array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        check_is_fitted(self, "estimator_")
        if not _is_dask(X):
            return self.estimator_.score(X, y, sample_weight=sample_weight)
        pred = self.predict(X)
        y = _as_array(y)
        w = da.ones(y.shape, chunks=y.chunks) if sample_weight is None else _as_array(
            sample_weight)
        if is_classifier(self.estimator_):
            right, total = dask.compute(((pred == y) * w).sum(), w.sum())
            return float(right / total)
        mean = (w * y).sum() / w.sum()
        residual, spread = dask.compute((w * (y - pred) ** 2).sum(),
                                        (w * (y - mean) ** 2).sum())
        return float(1.0 - residual / spread) if spread > 0 else 0.0

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        tags.input_tags.sparse = True
        return tags


# ----------------------------------------------------------- on the client


def _current_client():
    try:
        return distributed.get_client()
    except ValueError as exc:
        raise ValueError(
            "DataParallel.fit trains on a dask.distributed cluster: create a client "
            "first, e.g. `from dask.distributed import Client; client = Client()`."
        ) from exc


def _is_dask(obj):
    return dask.is_dask_collection(obj)


def _as_array(obj):
    """A dask array of a dask array, DataFrame or Series (row lengths known)."""
    if not _is_dask(obj):
        raise TypeError(
            f"DataParallel.fit takes dask arrays or dask DataFrames; got "
            f"{type(obj).__name__}. For data in memory, call the estimator's own fit."
        )
    if hasattr(obj, "to_dask_array"):
        return obj.to_dask_array(lengths=True)
    if any(np.isnan(c) for c in obj.chunks[0]):
        obj = obj.compute_chunk_sizes()
    return obj


def _aligned(X, y, sample_weight):
    """X, y and the weights as dask arrays whose row blocks coincide."""
    X = _as_array(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d; got a dask array of shape {X.shape}.")
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})  # a block must hold whole rows
    rows = X.chunks[0]

    def along(v, name):
        v = _as_array(v)
        if v.ndim == 2 and v.shape[1] == 1:
            v = v[:, 0]
        if v.shape[0] != X.shape[0]:
            raise ValueError(f"{name} has {v.shape[0]} rows, X has {X.shape[0]}.")
        return v if v.chunks[0] == rows else v.rechunk({0: rows})

    return X, along(y, "y"), None if sample_weight is None else along(sample_weight,
                                                                       "sample_weight")


def _classes_and_weights(est, y, classes):
    """The sorted classes (given, or unique labels computed on the cluster)
    and the class weights, computed from the label counts as ``fit`` does."""
    from ._labels import check_classes

    if classes is None and est.class_weight != "balanced":
        classes = da.unique(y).compute()
    counts = None
    if est.class_weight == "balanced":
        found, counts = dask.compute(*da.unique(y, return_counts=True))
        classes = found if classes is None else classes
    classes = check_classes(classes)
    if classes.size < 2:
        raise ValueError(
            f"The number of classes has to be greater than one; got {classes.size} class."
        )
    if est.class_weight is None:
        return classes, None
    if est.class_weight == "balanced":
        by_label = dict(zip(found.tolist(), counts.tolist(), strict=True))
        missing = [c for c in classes.tolist() if c not in by_label]
        if missing:
            raise ValueError(f"classes {missing} do not occur in y: class_weight="
                             "'balanced' cannot weigh them.")
        count = np.array([by_label[c] for c in classes.tolist()])
        # compute_class_weight's formula, in its order of operations
        return classes, int(count.sum()) / (classes.size * count.astype(np.float64))
    return classes, Trainer(est).class_weights(classes, classes)


class _Blocks:
    """The blocks of X, y and the weights, persisted on the cluster and
    grouped by the worker that holds them (in block order)."""

    def __init__(self, client, X, y, sample_weight, workers):
        arrays = [X, y] + ([] if sample_weight is None else [sample_weight])
        persisted = client.persist(arrays)
        self.keep = persisted  # the blocks live as long as this object
        futures = {f.key: f for f in distributed.futures_of(persisted)}
        per_array = [[futures[k] for k in _flat_keys(a)] for a in persisted]
        distributed.wait(per_array[0])
        holders = client.who_has(per_array[0])
        n_rows = X.chunks[0]
        allowed = None if workers is None else list(workers)
        load = {}
        self.groups = {}
        for i, fut in enumerate(per_array[0]):
            held = list(holders.get(fut.key, ()))
            if allowed is not None:
                held = [w for w in held if w in allowed] or [
                    min(allowed, key=lambda w: load.get(w, 0))]
            worker = held[0] if held else None
            load[worker] = load.get(worker, 0) + n_rows[i]
            self.groups.setdefault(worker, []).append(i)
        self.per_array = per_array
        self.has_weights = sample_weight is not None

    def of(self, worker):
        """The block futures of X, y, weights (or None) of a worker."""
        idx = self.groups[worker]
        picked = [[arr[i] for i in idx] for arr in self.per_array]
        return picked[0], picked[1], picked[2] if self.has_weights else None


def _flat_keys(arr):
    keys = arr.__dask_keys__()
    while keys and isinstance(keys[0], list):
        keys = [k for sub in keys for k in sub]
    return keys


class _Run:
    """Task submission and waiting for one fit, with its timeout."""

    def __init__(self, client, est, timeout):
        self.client = client
        self.est = _mixing.shipped_estimator(est)  # (shipped with every task)
        self.timeout = timeout
        self.token = uuid.uuid4().hex[:12]
        self.submitted = []

    def release(self):
        """Release every task of the fit on the cluster (the prepared data)."""
        if self.submitted:
            self.client.cancel(self.submitted)
            self.submitted = []

    def prepare(self, blocks, class_weights):
        workers, futures = [], []
        for i, worker in enumerate(sorted(blocks.groups, key=lambda w: blocks.groups[w][0])):
            xs, ys, ws = blocks.of(worker)
            place = {} if worker is None else dict(workers=[worker], allow_other_workers=True)
            futures.append(self.client.submit(
                _prepare_local, self.est, class_weights, xs, ys, ws, pure=False,
                key=f"skgd-prepare-{self.token}-{i}", **place))
            workers.append(worker)
        self.submitted.extend(futures)
        reports = self.gather([self.client.submit(operator.attrgetter("report"), f,
                                                  pure=False) for f in futures],
                              "preparing the data")
        empty = [i for i, r in enumerate(reports) if r["n_rows"] == 0]
        for i in reversed(empty):
            del workers[i], futures[i], reports[i]
        if not reports:
            raise ValueError("X has no rows to train on.")
        if not any(r["weight"] for r in reports):
            raise ValueError("sample_weight is zero for every sample: nothing to learn from.")
        return _mixing.Shards(workers, futures, reports)

    def submit(self, fn, *args, name):
        return self.client.submit(fn, *args, pure=False,
                                  key=f"skgd-{name}-{self.token}-{uuid.uuid4().hex[:8]}")

    def gather(self, futures, what):
        """Wait for ``futures`` (at most ``timeout`` seconds) and gather them;
        a failed task raises at once, with what was running."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        pending = list(futures)
        while pending:
            step = _POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic()))
            try:
                distributed.wait(pending, timeout=step)
            except TimeoutError:
                pass
            failed = [f for f in futures if f.status in ("error", "cancelled", "lost")]
            if failed:
                return self._raise_failure(futures, failed[0], what)
            pending = [f for f in pending if f.status != "finished"]
            if pending and deadline is not None and time.monotonic() >= deadline:
                self.client.cancel(futures)
                raise TimeoutError(
                    f"DataParallel.fit: {what} did not finish within timeout="
                    f"{self.timeout} s ({len(pending)} of {len(futures)} worker tasks "
                    "still running). A worker may have died with data Dask cannot "
                    "recompute, or the cluster is overloaded: check the cluster (its "
                    "dashboard), or raise `timeout`."
                )
        return self.client.gather(futures)

    def _raise_failure(self, futures, failed, what):
        status = failed.status
        error = failed.exception() if status == "error" else None
        self.client.cancel(futures)
        if error is not None:
            # the worker's own exception (a loss that raised, bad data, ...)
            raise error.with_traceback(failed.traceback())
        raise RuntimeError(
            f"DataParallel.fit: {what} failed: a task was {status} (a worker was "
            "lost and Dask could not recompute its data, e.g. data scattered from the "
            "client). Fit again; build the input from a Dask graph (not client.scatter) "
            "so that Dask can recompute what a lost worker held."
        )


# ------------------------------------------------------------ on a worker


def _concat(blocks):
    if len(blocks) == 1:
        return blocks[0]
    if sp.issparse(blocks[0]):
        return sp.vstack(blocks, format="csr")
    return np.concatenate(blocks)


def _prepare_local(est, class_weights, xs, ys, ws):
    """Concatenate a worker's blocks (in block order), validate and encode
    them, and measure what the step caps need (see ``Trainer.see_data``)."""
    if not xs or sum(x.shape[0] for x in xs) == 0:
        return _mixing.Shard(np.zeros((0, 0)), None, None, {"n_rows": 0})
    X = _concat(xs)
    y = np.concatenate([np.asarray(v).reshape(-1) for v in ys])
    w = None if ws is None else np.concatenate([np.asarray(v).reshape(-1) for v in ws])
    # A worker's rows may all weigh zero (weights used as a mask) while the
    # others' do not: its rows are validated, then train with weight zero,
    # as in a plain fit (the client refuses a fit whose rows all weigh zero).
    masked = w is not None and w.dtype.kind in "biuf" and w.size > 0 and not w.any()
    X, Y, sw, out_weight = Trainer(est).training_arrays(
        X, y, np.ones(w.shape) if masked else w, class_weights)
    if masked:
        sw = np.zeros_like(sw)
    X = _engine.narrow_indices(X)
    rows = np.arange(X.shape[0], dtype=np.int64)
    return _mixing.Shard(X, Y, sw, _mixing.shard_report(est, X, Y, sw, out_weight, rows), rows)


