"""The fitted weights as scikit-learn publishes them: ``coef_`` and
``intercept_``, which the user may read, write in place or replace, and
``sparsify`` / ``densify``.

``coef_`` is formed from the training state only when read (a training call
never pays O(n_features) to publish it); the array handed out, or the one
assigned, is then remembered (``Training.coef_out``) and is the model:
predictions multiply by it, and the next training call compares it with the
state and adopts what was written (O(n_features), paid only when ``coef_``
was read or assigned since the last call). ``intercept_`` is a plain
attribute; what was published in it is remembered as a tuple
(``Training.intercept_out``), so a write costs one comparison of
``n_outputs`` values to detect.

An averaged model trains as scikit-learn's averaged SGD, which keeps
arrays of its own that ``coef_`` and ``intercept_`` are published as:
what it ignores (an assigned array, or ``intercept_`` where it publishes
a copy) skgd ignores too, without comparing it with the state (see
``PublishedWeights._training_writes``).
"""

import math

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from ._pass_config import Training, average_of
from ._validation import FLOATS, real_array

try:  # scikit-learn >= 1.9: the sparse type its configuration asks for
    from sklearn.utils import _align_api_if_sparse as _align_sparse_api
except ImportError:  # pragma: no cover - older scikit-learn returns csr_matrix
    def _align_sparse_api(X):
        return sp.csr_matrix(X)


class PublishedWeights:
    """``coef_``, ``intercept_`` and what they are made from, for
    :class:`skgd._base.BaseMinibatchSGD` (a mixin: it reads the estimator's
    ``_training`` record and its shaping hooks)."""

    def _memo(self):
        """The estimator's :class:`~skgd._training.Training` record, made
        when first needed."""
        memo = self.__dict__.get("_training")
        if memo is None:
            memo = self.__dict__["_training"] = Training()
        return memo

    def __setstate__(self, saved):
        if "_state" in saved:  # pickled by skgd 0.2: the record's fields were attributes
            memo = Training()
            memo.state = saved.pop("_state")
            memo.averaged = saved.pop("_averaged_published", False)
            memo.intercept_out = saved.pop("_intercept_out", None)
            memo.coef_out = saved.pop("_coef_out", None)
            memo.coef_view = saved.pop("_coef_view", None)
            memo.needs_cap = bool(saved.pop("_needs_cap", False))
            saved["_training"] = memo
        super().__setstate__(saved)
        memo = self.__dict__.get("_training")
        if memo is not None and isinstance(memo.intercept_array, bool):
            # saved as whether intercept_ was the array published (see
            # __getstate__); an assigned one stays told apart by a stand-in
            memo.intercept_array = self.__dict__.get("intercept_") if memo.intercept_array else ()

    @property
    def _state(self):
        """The trained :class:`~skgd._engine.EngineState` (AttributeError
        before the first training call)."""
        memo = self.__dict__.get("_training")
        if memo is None or memo.state is None:
            raise AttributeError(f"{type(self).__name__!r} object has no training state")
        return memo.state

    def _averaged(self, state):
        """Whether the published model is the averaged one (averaging on and
        past its start)."""
        average = average_of(self)
        return bool(average) and state.averaging() and average <= state.t - 1

    def _published_average(self):
        """Whether the published model is the averaged one: decided when a
        training call publishes it, as scikit-learn's ``coef_`` is (changing
        ``average`` afterwards changes nothing until the next call)."""
        memo = self.__dict__.get("_training")
        return memo is not None and memo.averaged

    def _public_weights(self, state, averaged=None):
        """coef, intercept as the user sees them (averaged once averaging
        began); ``averaged`` defaults to what the parameters say now."""
        if self._averaged(state) if averaged is None else averaged:
            return state.averaged_weights()
        return state.weights()

    def _state_scores(self, state, X, averaged=None):
        """Raw scores ``X @ W.T + b`` of every output, from the state (costs
        the non-zeros of X, whatever the width of the model)."""
        averaged = self._averaged(state) if averaged is None else averaged
        intercept = state.avg_intercept if averaged else state.intercept
        return state.scores(X, averaged) + intercept

    @property
    def coef_(self):
        """Weights of the fitted model: writable, and assignable, as
        scikit-learn's (predictions see every write, the next training call
        those scikit-learn's sees: see :meth:`_training_writes`)."""
        memo = self.__dict__.get("_training")
        if memo is not None and memo.coef_out is not None:
            return memo.coef_out
        state = None if memo is None else memo.state
        if state is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute 'coef_'")
        coef, _ = self._public_weights(state, averaged=self._published_average())
        # (a new array: the public weights are computed, never a view of the state)
        coef = self._shape_coef(coef).astype(state.coef.dtype, copy=False)
        memo.coef_out, memo.coef_assigned = coef, False
        return coef

    @coef_.setter
    def coef_(self, value):
        memo = self._memo()
        # (``clf.coef_ *= 2`` sets the array handed out again: a write in place)
        memo.coef_assigned = memo.coef_assigned or value is not memo.coef_out
        self._hand_out(value)

    def _hand_out(self, coef):
        """Make ``coef`` what ``coef_`` holds, as the array published (a
        write to it is a write in place, see :meth:`_adopt_writes`)."""
        memo = self._memo()
        memo.coef_out = coef
        memo.coef_view = None

    def sparsify(self):
        """Convert ``coef_`` to a scipy.sparse CSR matrix, as scikit-learn's
        ``SGDClassifier.sparsify``: smaller and faster to predict with when
        most weights are zero (e.g. after L1). Predictions do not change.

        Unlike scikit-learn, training may go on afterwards: ``partial_fit``
        and a warm-start ``fit`` start from these weights (``coef_`` is then
        dense again).

        Returns
        -------
        self : object
        """
        check_is_fitted(self, msg=f"Estimator, {type(self).__name__}, must be fitted "
                                  "before sparsifying.")
        coef = self.coef_
        if sp.issparse(coef):
            return self
        unwritten = self._unwritten()
        sparse = _align_sparse_api(sp.csr_array(coef))
        self._hand_out(sparse)
        if unwritten:
            # The model stays the state's (predictions exactly as before)
            # while the sparse matrix holds what it held: its arrays are kept
            # to see a write, at the cost of its non-zeros.
            self._training.coef_view = tuple(
                a.copy() for a in (sparse.data, sparse.indices, sparse.indptr))
        return self

    def _sparse_view(self, coef):
        """Whether ``coef`` is the sparse matrix :meth:`sparsify` made from the
        state's weights, not written since (costs its non-zeros)."""
        view = self._training.coef_view
        return (view is not None and sp.issparse(coef) and coef.format == "csr"
                and all(np.array_equal(a, b) for a, b in
                        zip((coef.data, coef.indices, coef.indptr), view, strict=True)))

    def densify(self):
        """Convert a sparse ``coef_`` (see :meth:`sparsify`) back to a dense
        array; no-op when it is dense.

        Returns
        -------
        self : object
        """
        check_is_fitted(self, msg=f"Estimator, {type(self).__name__}, must be fitted "
                                  "before densifying.")
        if sp.issparse(self._training.coef_out):
            self._hand_out(self.coef_.toarray())
        return self

    def _public_shapes(self, state):
        """Shapes of ``coef_`` and ``intercept_`` for ``state``."""
        n_public = self._shape_intercept(state.intercept).shape[0]
        n_features = state.n_features
        shape = (n_features,) if self._shape_coef(state.intercept[:, None]).ndim == 1 else (
            n_public, n_features)
        return shape, (n_public,)

    def _published_array(self, value, shape, name):
        """What the user left in ``coef_`` or ``intercept_``, as a real array
        of the attribute's shape (sparse made dense)."""
        if sp.issparse(value):
            value = value.toarray()
        if not (isinstance(value, np.ndarray) and value.dtype in FLOATS):
            value = real_array(value, name)
        # (one row of weights, or one intercept, may come in any layout)
        if value.shape != shape and not (value.size == shape[-1] == math.prod(shape)
                                         and value.ndim <= 2):
            raise ValueError(
                f"{name} has shape {value.shape}, but this model's {name} has shape {shape}: "
                "assign an array of that shape."
            )
        return value.reshape(shape)

    def _written_coef(self, state):
        """``(public, written, changed)``: the published weights as the state
        has them (float64, the engine's layout), what ``coef_`` holds now
        (public layout), and where they differ; None when ``coef_`` was
        neither read nor assigned since the last training call. Costs
        O(n_features) otherwise."""
        out = self._training.coef_out
        if out is None or self._sparse_view(out):
            return None
        public, _ = self._public_weights(state, averaged=self._published_average())
        shape, _ = self._public_shapes(state)
        written = self._published_array(out, shape, "coef_")
        # what was handed out is the public weights in the model's dtype
        changed = written != self._shape_coef(public).astype(state.coef.dtype, copy=False)
        return public, written, changed

    def _written_intercept(self, state):
        """``(public, written, changed)`` for ``intercept_`` as
        :meth:`_written_coef` for ``coef_``; None when it holds what was
        published. Costs O(n_outputs)."""
        if "intercept_" not in self.__dict__:
            return None  # nothing published yet
        value = self.__dict__["intercept_"]
        published = self._training.intercept_out
        if (published is not None and type(value) is np.ndarray and value.ndim == 1
                and tuple(value.tolist()) == published):
            return None  # the common case, in about a microsecond
        public = (state.avg_intercept if self._published_average() else state.intercept).copy()
        if published is None:  # saved before intercept_ could be written
            published = tuple(self._shape_intercept(public).astype(state.coef.dtype).tolist())
        _, shape = self._public_shapes(state)
        written = self._published_array(value, shape, "intercept_")
        changed = written != np.asarray(published)
        if not changed.any():
            return None
        return public, written, changed

    def _write_public(self, weights, values, changed):
        """Write the user's ``values`` (public layout) into ``weights`` (the
        engine's layout, one row per output, in place) where ``changed``."""
        view = weights.reshape(values.shape)
        view[changed] = values[changed]

    def _with_writes(self, written, name, base=None, training=True):
        """``base`` (default: the published weights, float64 in the engine's
        layout) with the user's writes in, or None when nothing was
        written. Training refuses non-finite writes."""
        if written is None or not written[2].any():
            return None
        public, values, changed = written
        bad = changed & ~np.isfinite(values)
        if training and bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} must be finite to train from; got {values[where]} "
                             f"at index {where}.")
        base = public if base is None else base
        self._write_public(base, values, changed)
        return base

    def _averaged_training(self, state):
        """Whether the next training call averages, as the last one did.

        scikit-learn's averaged SGD then trains arrays of its own
        (``_standard_coef``, ``_average_coef`` and their intercepts), not
        ``coef_`` and ``intercept_``: a write reaches training only through
        the array it was published as, which an assigned one is not.
        """
        return bool(average_of(self)) and state.avg_coef.size > 0

    def _intercept_writes_lost(self, state):
        """Whether scikit-learn's averaged training loses what is written in
        place to ``intercept_``: its regressor publishes a copy of its
        intercept, and its one-vs-rest loop writes each class's intercept
        iterate over the averaged intercepts it published (those it then
        publishes again)."""
        return state.outputs == "regression" or (
            self._published_average() and self._per_output_problems(state))

    def _intercept_assigned(self):
        """Whether ``intercept_`` is another array than the one published."""
        published = self._training.intercept_array
        return published is not None and self.__dict__.get("intercept_") is not published

    def _training_writes(self, state):
        """``(coef, intercept)``: what of the writes (see
        :meth:`_written_coef`) the next training call sees, None for none;
        all of them unless it is averaged (see :meth:`_averaged_training`).
        An ignored ``coef_`` costs nothing to ignore."""
        if not self._averaged_training(state):
            return self._written_coef(state), self._written_intercept(state)
        coef = None if self._training.coef_assigned else self._written_coef(state)
        lost = self._intercept_assigned() or self._intercept_writes_lost(state)
        return coef, None if lost else self._written_intercept(state)

    def _adopt_writes(self, state):
        """Make what the user left in ``coef_`` and ``intercept_`` the model
        that this ``partial_fit`` call trains on, as scikit-learn's next
        ``partial_fit`` does (see :meth:`_training_writes`).

        The writes go where the published weights come from: the averaged
        weights once averaging has begun (the running average goes on from
        them, the weights as they were), otherwise the weights. New arrays
        replace the state's, so an :class:`_engine.Undo` made before puts
        the old ones back. Costs O(n_outputs) unless ``coef_`` was read or
        assigned since the last training call (or assigned, of an averaged
        model: ignored).
        """
        written_coef, written_intercept = self._training_writes(state)
        if written_coef is None and written_intercept is None:
            return
        averaged, base = self._published_average(), (None, None)
        if averaged and not (average_of(self) and state.averaging()):
            # averaging turned off since: the written entries go into the
            # weights, which training goes on from
            averaged, base = False, state.weights()
        coef = self._with_writes(written_coef, "coef_", base[0])
        intercept = self._with_writes(written_intercept, "intercept_", base[1])
        if coef is not None:
            if averaged:
                state.replace_averaged_weights(coef)
            else:
                state.replace_weights(coef)
        if intercept is not None:
            (state.avg_intercept if averaged else state.intercept)[:] = intercept

    def _warm_start_weights(self, state):
        """``(coef, intercept, average)`` a warm-started ``fit`` starts from,
        float64 in the engine's layout; ``average`` seeds the sum of the new
        average (None: zero).

        As scikit-learn: a classifier, or a model not averaged, starts from
        ``coef_`` and ``intercept_`` with every write, and a new average.
        The averaged ``SGDRegressor`` ignores them: it goes on from its own
        weights and intercept (with the writes :meth:`_training_writes`
        lets through), and its ``_average_coef``, not cleared, stays in the
        sum of the new average (``1 / k`` of it after ``k`` steps).
        """
        averaged = self._published_average()
        if state.outputs != "regression" or not self._averaged_training(state):
            coef, intercept = self._public_weights(state, averaged=averaged)
            written = self._with_writes(self._written_coef(state), "coef_")
            coef = coef if written is None else written
            written = self._with_writes(self._written_intercept(state), "intercept_")
            return coef, intercept if written is None else written, None
        coef, intercept = state.weights()
        average = state.average_value()
        written, _ = self._training_writes(state)
        if written is not None:
            self._with_writes(written, "coef_", average if averaged else coef)
        return coef, intercept, average

    def __getstate__(self):
        # (a copy: Python's own __getstate__ hands out the live __dict__)
        saved = dict(super().__getstate__())
        memo = saved.get("_training")
        if memo is None:
            return saved
        memo = saved["_training"] = memo.copy()
        if memo.coef_out is not None and (
                isinstance(memo.coef_out, np.ndarray) and self._unwritten()):
            memo.coef_out = None  # read, not written: formed again when read
        if memo.intercept_array is not None:
            # not the array: not every serializer keeps two references one
            # object (joblib copies arrays)
            memo.intercept_array = memo.intercept_array is saved.get("intercept_")
        return saved

    def _unwritten(self):
        """Whether ``coef_`` holds the published weights, read and not written."""
        try:
            written = self._written_coef(self._training.state)
        except (ValueError, AttributeError):
            return False
        return written is not None and not written[2].any()
