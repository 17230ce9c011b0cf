"""What both estimators share: their parameters, the validation of their
input, prediction, and the bookkeeping of a training call (all or nothing).

Training itself is the driver's (:mod:`skgd._training`); the fitted weights
as scikit-learn publishes them are :mod:`skgd._published`'s.
"""

import functools
import operator
import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, is_classifier
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import _assert_all_finite, check_is_fitted, validate_data

from . import _engine
from . import _smoothness as smoothness
from ._published import PublishedWeights
from ._validation import (
    CSR_TYPES,
    FAST_LIMIT,
    FLOATS,
    INDEX_TYPES,
    check_csr_structure,
    check_magnitude,
    check_sample_weight,
    overflow_sentence,
    real_array,
    squares_finite,
    sum_of_squares,
)
from .losses import Loss, get_loss
from .schedules import SCHEDULES, get_schedule

# Where the documentation's API pages live (the "?" link of the HTML repr
# in notebooks, as scikit-learn's estimators have).
DOCS_URL = "https://skgd.readthedocs.io/en/latest/"


@functools.cache
def _param_names(cls):
    """The constructor parameters of ``cls``, in a fixed order."""
    return tuple(cls._get_param_names())


class BaseMinibatchSGD(PublishedWeights, BaseEstimator):
    """Shared machinery of the minibatch SGD estimators (not public)."""

    _loss_names = {}  # set by subclasses: name -> Loss factory
    _doc_link_module = "skgd"
    _doc_link_template = DOCS_URL + "generated/skgd.{estimator_name}.html"

    _parameter_constraints: dict = {
        "loss": [StrOptions(set()), Loss],  # names filled by subclasses
        "penalty": [StrOptions({"l2", "l1", "elasticnet"}), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "l1_ratio": [Interval(Real, 0, 1, closed="both"), None],
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "shuffle": ["boolean"],
        "verbose": ["verbose"],
        "epsilon": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "learning_rate": [StrOptions(set(SCHEDULES))],
        "eta0": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, None, None, closed="neither")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "average": [Interval(Integral, 0, None, closed="neither"), "boolean"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "clip_norm": [Interval(Real, 0, None, closed="neither"), None],
        "clip_value": [Interval(Real, 0, None, closed="neither"), None],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "nesterov": ["boolean"],
    }

    # ------------------------------------------------------------ validation

    def _check_params(self, for_partial_fit=False):
        """Validate the hyper-parameters; skipped when they have not changed
        since the last successful check (streaming calls pay for it once)."""
        values = tuple(map(self.__dict__.get, _param_names(type(self))))
        memo = self.__dict__.get("_training")
        checked = None if memo is None else memo.checked
        if (checked is not None and checked[0] == for_partial_fit
                and all(map(operator.is_, checked[1], values))):
            return  # every parameter is the object it was (set_params assigns anew)
        self._validate_params()
        if isinstance(self.batch_size, (bool, np.bool_)):
            # bool is an int to Python; a batch of True samples is a typo.
            raise InvalidParameterError(
                f"The 'batch_size' parameter of {type(self).__name__} must be an int "
                f"in the range [1, inf), not a bool. Got {self.batch_size!r} instead."
            )
        loss_cls = type(self.loss)
        if isinstance(self.loss, Loss) and (loss_cls.loss is None or loss_cls.dloss is None):
            raise TypeError(
                f"loss={self.loss!r}: {loss_cls.__name__} must define `loss` and "
                "`dloss` as static methods wrapping numba.njit functions."
            )
        if self.early_stopping and for_partial_fit:
            raise ValueError("early_stopping should be False with partial_fit.")
        if self.penalty == "elasticnet" and self.l1_ratio is None:
            raise ValueError("l1_ratio must be set when penalty is 'elasticnet'.")
        get_schedule(self.learning_rate).check(
            alpha=self.alpha, momentum=self.momentum, loss=self.loss,
            kind="classifier" if is_classifier(self) else "regressor",
            multi_class=getattr(self, "multi_class", "ovr"))
        if self.power_t < 0:
            warnings.warn(
                "Negative values for `power_t` are deprecated in version 1.8 and will "
                "raise an error in 1.10. Use values in the range [0.0, inf) instead. "
                "(As scikit-learn: a negative power_t makes the 'invscaling' rate grow.)",
                FutureWarning,
                stacklevel=3,
            )
        # a fresh token: the per-call plan is cached against its identity
        self._memo().checked = (for_partial_fit, values, object())

    def _fast_X(self, X, training=False):
        """Validate a fitted model's input cheaply in the common case.

        C-ordered float ndarrays and CSR matrices (int32 or int64 indices) of
        the right width, with every value finite and no feature names to
        compare, pass here in microseconds: a stream of small chunks pays
        about what its data costs to read. Anything else returns None and
        goes through scikit-learn's ``validate_data`` (so every error message
        stays the same). For training, float64 data must also have a finite
        sum of squares (see ``skgd._validation.check_magnitude``); that costs the same pass.
        """
        if "feature_names_in_" in self.__dict__:
            return None
        if type(X) is np.ndarray:
            if X.ndim != 2 or X.dtype not in FLOATS or not X.flags.c_contiguous:
                return None
            values = X
        elif type(X) in CSR_TYPES:
            if X.data.dtype not in FLOATS or X.indices.dtype not in INDEX_TYPES:
                return None
            values = X.data
        else:
            return None
        if X.shape[0] == 0:
            return None
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        if values.size:
            # NaN, infinity or (for training) values whose squares might
            # overflow: let the full check say
            low, high = float(values.min()), float(values.max())
            limit = FAST_LIMIT if training else np.inf
            if not (-limit < low and high < limit):
                return None
        if values is not X:
            check_csr_structure(X)
        return X

    def _fast_Xy(self, X, y, numeric):
        """``_fast_X`` for a training chunk, with a 1-d ``y`` of matching length
        (finite numbers when ``numeric``); None sends both to the full path."""
        Xf = self._fast_X(X, training=True)
        if Xf is None or type(y) is not np.ndarray or y.ndim != 1 or y.shape[0] != X.shape[0]:
            return None
        if numeric and y.dtype.kind not in "fiu":
            return None
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            return None  # NaN/inf targets or labels: the full check names them
        return Xf, y

    def _validate_X(self, X, y="no_validation", reset=True, y_numeric=False):
        """Validate X (and y) once: float32/float64, C-ordered or CSR."""
        kwargs = dict(
            accept_sparse="csr",
            dtype=FLOATS,
            order="C",
            accept_large_sparse=True,
            reset=reset,
        )
        kind = getattr(getattr(X, "dtype", None), "kind", None)
        if kind in ("M", "m"):
            raise TypeError(
                f"X has dtype {X.dtype}: dates and durations are not numeric features. "
                "Convert them to numbers first (e.g. seconds since a reference date)."
            )
        if isinstance(y, str) and y == "no_validation":
            X = validate_data(self, X, **kwargs)
            if sp.issparse(X):
                check_csr_structure(X)
            return X
        # One pass checks both: a finite sum of squares means every value is
        # finite and none too large; only otherwise does scikit-learn's
        # finiteness check run, to name a NaN or infinity as it does.
        X, y = validate_data(self, X, y, y_numeric=y_numeric, ensure_all_finite=False,
                             **kwargs)
        if sp.issparse(X):
            check_csr_structure(X)
        if not squares_finite(X):
            _assert_all_finite(X.data if sp.issparse(X) else X, input_name="X",
                               estimator_name=type(self).__name__)
            check_magnitude(X)
        if y_numeric and y.dtype.kind == "f" and not np.isfinite(y).all():
            # scikit-learn checks y before converting it: None in an object
            # array becomes NaN only here.
            i = int(np.flatnonzero(~np.isfinite(y))[0])
            raise ValueError(
                f"Input y contains {y[i]} at index {i} (a missing value such as "
                "None in an object array)."
            )
        return X, y

    _check_sample_weight = staticmethod(check_sample_weight)

    def _loss_object(self):
        return get_loss(self.loss, self.epsilon, self._loss_names)

    def _outputs(self):
        """What the engine's outputs mean (a stream may not change it)."""
        return "regression"

    def _n_threads(self):
        """How many threads a pass may use (``n_jobs``, where there is one)."""
        return 1

    def _per_output_problems(self, state):
        """Whether each output is a problem of its own (one-vs-rest)."""
        return False

    def _problem_scores(self, scores, y, sample_weight):
        """Validation score of each output's own problem (one-vs-rest)."""
        raise NotImplementedError

    # The hooks below are the estimators' own: the engine keeps one row of
    # weights per output, shape (n_outputs, n_features); an estimator
    # publishes them in scikit-learn's shapes and scores them its way.

    def _shape_coef(self, coef):
        """``coef_`` from the engine's weights ``coef`` of shape
        (n_outputs, n_features). Also given an (n_outputs, 1) array, to
        learn the number of dimensions of ``coef_``."""
        raise NotImplementedError

    def _shape_intercept(self, intercept):
        """``intercept_`` from the engine's intercepts, shape (n_outputs,)."""
        raise NotImplementedError

    def _shape_scores(self, scores):
        """The raw scores of shape (n_samples, n_outputs) as the published
        model gives them, still two-dimensional (``decision_function`` and
        ``predict`` shape them further)."""
        raise NotImplementedError

    def _score_scores(self, scores, y, sample_weight):
        """The validation score (``score``'s measure: accuracy, R^2) of raw
        scores of shape (n_samples, n_outputs) against ``y``; higher is
        better (early stopping keeps the best epoch's model)."""
        raise NotImplementedError

    def _is_classifier_like(self):
        return False

    # ------------------------------------------------------------ predicting

    def _decision(self, X):
        memo = self.__dict__.get("_training")
        if memo is None or memo.state is None:
            check_is_fitted(self)
        Xf = self._fast_X(X)
        if Xf is None:
            Xf = self._validate_X(X, reset=False)
        state = memo.state
        averaged = memo.averaged
        coef = memo.coef_out
        if coef is not None and self._sparse_view(coef):
            coef = None
        written = self._written_intercept(state)
        if coef is None and written is None:  # the model is the state's
            scores = self._state_scores(state, Xf, averaged=averaged)
            return self._shape_scores(scores).astype(state.coef.dtype, copy=False)
        intercept = self._shape_intercept(
            (state.avg_intercept if averaged else state.intercept) if written is None
            else self._with_writes(written, "intercept_", training=False))
        if coef is None:
            scores = self._shape_scores(state.scores(Xf, averaged))
        else:  # what coef_ holds: costs the non-zeros of X, as the state's
            shape, _ = self._public_shapes(state)
            if sp.issparse(coef) and coef.ndim == 2:  # sparsified
                scores = safe_sparse_dot(Xf, coef.T, dense_output=True)
            else:  # (scipy cannot multiply by a regressor's 1-d sparse coef_)
                coef = self._published_array(coef, shape, "coef_")
                scores = _engine._dot(Xf, coef.reshape(-1, shape[-1]))
        return (scores + intercept).astype(state.coef.dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -------------------------------------------------------- bookkeeping

    @contextmanager
    def _unchanged_on_error(self):
        """Restore every attribute, and the training state, if the block raises.

        Yields a list to which the block appends the :class:`_engine.Undo`
        of every pass it runs in place; those are rolled back first (each in
        one compiled call), then the attributes are put back. The block is
        one training call: X's row norms are computed once in it
        (:func:`skgd._smoothness.row_norms_once`).
        """
        saved = dict(self.__dict__)
        memo = saved.get("_training")  # changed in place by the call: its fields too
        memo_fields = None if memo is None else dict(memo.__dict__)
        # The objects a call changes in place: a RandomState passed as
        # random_state, drawn from when a new state is seeded, and
        # loss_curve_, which partial_fit extends (see _commit).
        rng = self.__dict__.get("random_state")
        rng_state = rng.get_state() if isinstance(rng, np.random.RandomState) else None
        curve = self.__dict__.get("loss_curve_")
        n_curve = len(curve) if curve is not None else 0
        undo = []
        try:
            with smoothness.row_norms_once():  # the scope of one training call
                yield undo
        except BaseException:
            for record in reversed(undo):
                record.rollback()
            if curve is not None:
                del curve[n_curve:]
            self.__dict__.clear()
            self.__dict__.update(saved)
            if memo is not None:
                memo.__dict__.clear()
                memo.__dict__.update(memo_fields)
            if rng_state is not None:
                rng.set_state(rng_state)
            raise

    def _commit(self, state, n_iter, curve, val_scores=None, *, incremental):
        """Publish a finished state as fitted attributes, in one step (a
        single dict update, so an interrupt cannot land half way).

        ``incremental`` (``partial_fit``) extends ``loss_curve_`` in place:
        a copy would cost a long stream a list of all its calls on every
        call. An interrupt between the extension and the update is undone
        by :meth:`_unchanged_on_error`, which cuts the list back.
        """
        averaged = self._averaged(state)
        memo = self._memo().copy()  # (the one before stays as it was until the update)

        intercept = state.avg_intercept if averaged else state.intercept
        intercept_ = self._shape_intercept(intercept).astype(state.coef.dtype)
        if incremental and "loss_curve_" in self.__dict__:
            loss_curve = self.loss_curve_
            loss_curve.extend(curve)
        else:
            loss_curve = list(curve)
        memo.state = state
        memo.averaged = averaged
        # what was published, to see writes; coef_ is formed when read
        memo.intercept_out = tuple(intercept_.tolist())
        memo.intercept_array = intercept_
        memo.coef_out = memo.coef_view = None
        memo.coef_assigned = False
        published = {
            "_training": memo,
            "n_iter_": n_iter,
            "t_": state.t,
            "intercept_": intercept_,
            "loss_curve_": loss_curve,
        }
        if val_scores:
            published["validation_scores_"] = list(val_scores)
            published["best_score_"] = float(max(val_scores))
        self.__dict__.update(published)

    def _init_arrays(self, n_outputs, n_features, coef_init, intercept_init):
        """Check ``coef_init`` / ``intercept_init``; fall back to warm start.

        Returns ``(coef_init, intercept_init, average_init)``; the last seeds
        the sum of the average (None: zero; see
        :meth:`~skgd._published.PublishedWeights._warm_start_weights`)."""
        average_init = None
        if self.warm_start and hasattr(self, "_state"):
            if self._state.coef.shape == (n_outputs, n_features):
                # As scikit-learn: warm values (the published model, with what
                # the user wrote to coef_ and intercept_) fill in only what is
                # not given.
                warm_coef, warm_intercept, warm_average = self._warm_start_weights(self._state)
                if coef_init is None:
                    coef_init, average_init = warm_coef, warm_average
                intercept_init = warm_intercept if intercept_init is None else intercept_init
        if coef_init is not None:
            coef_init = real_array(coef_init, "coef_init")
            if coef_init.size != n_outputs * n_features or coef_init.ndim > 2 or (
                coef_init.ndim == 2 and coef_init.shape != (n_outputs, n_features)
            ):
                # scikit-learn's words (they differ for one output and several)
                name = "coef_init" if n_outputs == 1 else "``coef_``"
                raise ValueError(
                    f"Provided {name} does not match dataset: coef_init has shape "
                    f"{coef_init.shape}; expected ({n_outputs}, {n_features})."
                )
            coef_init = coef_init.reshape(n_outputs, n_features)
        if intercept_init is not None:
            intercept_init = real_array(intercept_init, "intercept_init").reshape(-1)
            if intercept_init.shape != (n_outputs,):
                raise ValueError(
                    f"Provided intercept_init does not match dataset: intercept_init "
                    f"has shape {intercept_init.shape}; expected ({n_outputs},)."
                )
        for name, init in (("coef_init", coef_init), ("intercept_init", intercept_init)):
            if init is not None and not np.isfinite(init).all():
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(init))[0])
                raise ValueError(
                    f"{name} must be finite; got {init[bad]} at index {bad}."
                )
            if init is not None and not np.isfinite(sum_of_squares(init)):
                raise ValueError(
                    f"{overflow_sentence()} {name} has values too large to train from "
                    "(largest magnitude "
                    f"{np.abs(init).max():.3g}): their squares overflow float64."
                )
        return coef_init, intercept_init, average_init
