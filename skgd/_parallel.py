"""Train one model on the cores of one machine by parameter mixing.

:class:`DataParallel` is the local sibling of :class:`skgd.dask.DataParallel`:
the same rounds (:mod:`skgd._mixing`), run on threads of this process over
shards of the one in-memory X (index arrays, not copies). The compiled
pass releases the GIL, so the shards' passes run at the same time.
"""

from concurrent.futures import Future, ThreadPoolExecutor, wait
from numbers import Integral

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, MetaEstimatorMixin, is_classifier
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted

from . import _engine, _mixing
from ._training import Trainer

__all__ = ["DataParallel"]


class DataParallel(MetaEstimatorMixin, BaseEstimator):
    """Train one skgd model on several threads by parameter mixing.

    The rows are dealt at random into ``n_jobs`` shards; each epoch, every
    shard runs the compiled SGD pass over its own rows from the current
    weights, on a thread of its own, and every ``mix_every`` epochs the
    shards' models are averaged, weighted by their numbers of rows; the
    next round starts from the average (iterative parameter mixing: McDonald,
    Hall & Mann 2010). The data stays where it is: each shard is an index
    array into X.

    Parameters
    ----------
    estimator : MinibatchSGDClassifier or MinibatchSGDRegressor
        The model to train; its parameters apply as in ``fit``: ``max_iter``
        epochs at most, the ``tol`` rule on the mixed epoch objective,
        ``shuffle`` (each shard shuffles its own rows every epoch),
        ``average``, L1, momentum, clipping, one-vs-rest per-class
        stopping. ``early_stopping=True`` and ``learning_rate='auto'`` are
        refused, as by :class:`skgd.dask.DataParallel`.
    n_jobs : int or None, default=None
        Shards, each trained on a thread of its own. None means 1 unless in
        a joblib ``parallel_config`` context; -1 means all cores. With one
        shard a fit is exactly ``estimator.fit``.
    mix_every : int, default=1
        Epochs each shard runs between two mixes.

    Attributes
    ----------
    estimator_ : estimator
        The trained model: an ordinary fitted skgd estimator (predict,
        score, pickle, ``partial_fit`` afterwards).
    n_iter_ : int
        Epochs run.
    n_mixes_ : int
        Times the shards' models were mixed.
    shard_rows_ : ndarray of shape (n_shards,)
        Rows each shard trained on.
    classes_ : ndarray
        The classes (classifiers only).

    Notes
    -----
    A mix treats each part of the state as :class:`skgd.dask.DataParallel`
    does (see its notes). Mixing is not a free lunch: an epoch of ``k``
    shards takes about ``1/k`` of the time, but each shard's steps see
    ``1/k`` of the rows, so on small or hard problems the mixed model may
    need more epochs than ``fit`` for the same accuracy. The same seed and
    ``n_jobs`` give the same model.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from skgd import DataParallel, MinibatchSGDClassifier
    >>> X, y = make_classification(n_samples=2000, random_state=0)
    >>> model = DataParallel(MinibatchSGDClassifier(random_state=0), n_jobs=2).fit(X, y)
    >>> model.estimator_.score(X, y) > 0.8
    True
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "partial_fit"])],
        "n_jobs": [Integral, None],
        "mix_every": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, estimator, *, n_jobs=None, mix_every=1):
        self.estimator = estimator
        self.n_jobs = n_jobs
        self.mix_every = mix_every

    def fit(self, X, y, sample_weight=None):
        """Train on ``n_jobs`` threads.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        self._validate_params()
        if self.n_jobs == 0:
            raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive count.")
        est = _mixing.training_copy("DataParallel", self.estimator,
                                    getattr(self, "estimator_", None))
        X, Y, sw, out_weight = _training_arrays(est, X, y, sample_weight)
        if not sw.any():
            raise ValueError("sample_weight is zero for every sample: nothing to learn from.")
        shards = _deal(X.shape[0], effective_n_jobs(self.n_jobs), Trainer(est).shuffle_seed())
        # The step caps and the intercept's decay are measured once, on all
        # the rows, as fit measures them (the shards are random samples of
        # the same data; the Dask wrapper can only measure each worker's).
        whole = _mixing.shard_report(est, X, Y, sw, out_weight,
                                     np.arange(X.shape[0], dtype=np.int64))
        reports = [dict(whole, n_rows=rows.size, weight=float(sw[rows].sum()))
                   for rows in shards]
        data = _mixing.Shards(list(range(len(shards))),
                              [_mixing.Shard(X, Y, sw, r, rows)
                               for r, rows in zip(reports, shards, strict=True)], reports)
        state, plan, hyper, out_weight = _mixing.start_state(est, X.dtype, X.shape[1], reports)
        with _Threads(est, len(shards)) as run:
            mixing = _mixing.MixingPass(run, data, state, hyper, out_weight, self.mix_every)
            n_iter, curve, _ = Trainer(est).epoch_loop(
                state, plan, mixing, hyper, n_rows=data.n_rows, max_epochs=est.max_iter,
                out_weight=out_weight)
        Trainer(est).publish(state, n_iter, curve, stacklevel=1)
        self.estimator_ = est
        self.n_iter_ = n_iter
        self.n_mixes_ = mixing.n_mixes
        self.shard_rows_ = data.rows
        if is_classifier(est):
            self.classes_ = est.classes_
        return self

    def predict(self, X):
        """:attr:`estimator_`'s predictions."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)

    def decision_function(self, X):
        """:attr:`estimator_`'s decision function (classifiers)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.decision_function(X)

    def predict_proba(self, X):
        """:attr:`estimator_`'s probabilities (log or modified Huber loss)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)

    def score(self, X, y, sample_weight=None):
        """Accuracy (classifiers) or R^2 (regressors) of :attr:`estimator_`."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.score(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        tags.input_tags.sparse = True
        return tags


def _training_arrays(est, X, y, sample_weight):
    """X, the engine's targets, sample weights and one-vs-rest output
    weights, validated and encoded as ``est.fit`` does (setting
    ``n_features_in_`` and, for a classifier, ``classes_``)."""
    trainer = Trainer(est)
    if is_classifier(est):
        from ._labels import encode_labels

        X, y = trainer.validated(X, y)
        classes, _ = encode_labels(y)
        if classes.size < 2:
            raise ValueError(
                f"The number of classes has to be greater than one; got {classes.size} class."
            )
        est.classes_ = classes
        class_weights = trainer.class_weights(classes, y)
    else:
        X, y = trainer.validated(X, y)
        class_weights = None
    X, Y, sw, out_weight = trainer.training_arrays(X, y, sample_weight, class_weights)
    return _engine.narrow_indices(X), Y, sw, out_weight


def _deal(n_rows, n_shards, seed):
    """Row indices of each shard: one shard is every row in order; more
    deal each row to a shard at random (from ``seed``; a sorted or
    clustered X still gives every shard a sample of all of it), each
    shard's rows in order."""
    n_shards = max(1, min(n_shards, n_rows))
    if n_shards == 1:
        return [np.arange(n_rows, dtype=np.int64)]
    shard = np.random.RandomState(seed).randint(n_shards, size=n_rows).astype(np.int8)
    rows = [np.flatnonzero(shard == i) for i in range(n_shards)]
    return [r.astype(np.int64) for r in rows if r.size]


class _Threads:
    """Where a round of :class:`DataParallel` runs: a thread per shard
    (see :mod:`skgd._mixing` for the interface)."""

    def __init__(self, est, n_threads):
        self.est = _mixing.shipped_estimator(est)
        self.pool = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="skgd")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.pool.shutdown(wait=True)  # no thread outlives the fit, even on an error
        return False

    def submit(self, fn, *args, name):
        # a future among the arguments stands for its result (resolved here:
        # a task waiting on another inside the pool could wait for ever)
        args = [a.result() if isinstance(a, Future) else a for a in args]
        return self.pool.submit(fn, *args)

    def gather(self, futures, what):
        wait(futures)  # every shard done before any error is raised
        return [f.result() for f in futures]
