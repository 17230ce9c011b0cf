"""What both estimators share: parameters, validation, the epoch driver,
early stopping and ``partial_fit`` bookkeeping."""

import functools
import time
import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import InvalidParameterError, Interval, StrOptions
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _engine
from . import _smoothness as smoothness
from .losses import Loss, MulticlassLoss, get_loss
from .schedules import ADAPTIVE, OPTIMAL, SCHEDULES, optimal_init

_FLOATS = [np.float64, np.float32]


@functools.lru_cache(maxsize=None)
def _param_names(cls):
    return tuple(cls._get_param_names())


def _same(a, b):
    """Equality of two parameter tuples that may hold arrays or objects."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x is y:
            continue
        try:
            if type(x) is not type(y) or not bool(x == y):
                return False
        except (ValueError, TypeError):
            return False
    return True


def _check_magnitude(X):
    """Refuse training data too large for the engine's float64 arithmetic.

    The step-size cap and the objective need sums of squared features; once
    those overflow float64 (values beyond about 1e154), training can only
    diverge or stand still, so say so up front. float32 data never trips
    this: its largest value squared is about 1e77.
    """
    v = X.data if sp.issparse(X) else X.reshape(-1)
    if v.dtype != np.float64 or v.size == 0:
        return
    with np.errstate(over="ignore"):
        if np.isfinite(np.vdot(v, v)):
            return
    big = float(max(abs(v.max()), abs(v.min())))
    raise ValueError(
        f"X has values too large to train on (largest magnitude {big:.3g}): the "
        "sum of their squares overflows float64. Scale the features (e.g. "
        "StandardScaler)."
    )


class BaseMinibatchSGD(BaseEstimator):
    """Shared machinery of the minibatch SGD estimators (not public)."""

    _loss_names = {}  # set by subclasses: name -> Loss factory

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
        names = _param_names(type(self))
        fingerprint = (for_partial_fit,) + tuple(self.__dict__.get(n) for n in names)
        cached = self.__dict__.get("_checked_params")
        if cached is not None and _same(cached, fingerprint):
            return
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
        if self.learning_rate == "optimal" and self.alpha == 0:
            raise ValueError(
                "alpha must be > 0 since learning_rate is 'optimal': alpha is used "
                "to compute the optimal learning rate."
            )
        if self.penalty == "elasticnet" and self.l1_ratio is None:
            raise ValueError("l1_ratio must be set when penalty is 'elasticnet'.")
        self._checked_params = fingerprint

    def _fast_X(self, X, training=False):
        """Validate a fitted model's input cheaply in the common case.

        Plain C-ordered float ndarrays of the right width, with every value
        finite and no feature names to compare, pass here in microseconds;
        anything else returns None and goes through scikit-learn's
        ``validate_data`` (so every error message stays the same). For
        training, float64 data must also have a finite sum of squares (see
        ``_check_magnitude``); that costs the same one pass.
        """
        if (
            type(X) is not np.ndarray
            or X.ndim != 2
            or X.dtype not in _FLOATS
            or not X.flags.c_contiguous
            or X.shape[0] == 0
            or "feature_names_in_" in self.__dict__
        ):
            return None
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        with np.errstate(over="ignore", invalid="ignore"):
            # NaN/inf, or overflow: let the full check say
            total = np.vdot(X, X) if training and X.dtype == np.float64 else X.sum()
            if not np.isfinite(total):
                return None
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
            dtype=_FLOATS,
            order="C",
            accept_large_sparse=True,
            reset=reset,
        )
        if isinstance(y, str) and y == "no_validation":
            return validate_data(self, X, **kwargs)
        X, y = validate_data(self, X, y, y_numeric=y_numeric, **kwargs)
        _check_magnitude(X)
        if y_numeric and y.dtype.kind == "f" and not np.isfinite(y).all():
            # scikit-learn checks y before converting it: None in an object
            # array becomes NaN only here.
            i = int(np.flatnonzero(~np.isfinite(y))[0])
            raise ValueError(
                f"Input y contains {y[i]} at index {i} (a missing value such as "
                "None in an object array)."
            )
        return X, y

    @staticmethod
    def _check_sample_weight(sample_weight, n_samples):
        if sample_weight is None:
            return np.ones(n_samples, dtype=np.float64)
        if sp.issparse(sample_weight):
            raise TypeError(
                "sample_weight must be a 1-d array-like of shape "
                f"({n_samples},), not a sparse matrix."
            )
        sw = np.asarray(sample_weight)
        if sw.ndim == 0:
            if not np.issubdtype(sw.dtype, np.number) or np.iscomplexobj(sw):
                raise ValueError(
                    f"sample_weight must be real numbers; got {sample_weight!r}."
                )
            sw = np.full(n_samples, float(sw))
        if sw.ndim != 1 or sw.shape[0] != n_samples:
            raise ValueError(
                f"sample_weight.shape == {sw.shape}, expected ({n_samples},)."
            )
        if not np.issubdtype(sw.dtype, np.number) or np.iscomplexobj(sw):
            raise ValueError(f"sample_weight must be real numbers; got dtype {sw.dtype}.")
        sw = sw.astype(np.float64)
        bad = ~np.isfinite(sw) | (sw < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"sample_weight must be finite and non-negative; got {sw[i]} at index {i}."
            )
        if not sw.any():
            raise ValueError("sample_weight is zero for every sample: nothing to learn from.")
        return sw

    def _loss_object(self):
        return get_loss(self.loss, self.epsilon, self._loss_names)

    # --------------------------------------------------------------- engine

    def _hyper(self, state, loss, dtype):
        schedule = SCHEDULES[self.learning_rate]
        t0 = 0.0
        if schedule == OPTIMAL:
            fn, params = loss.dloss, loss.params()
            if isinstance(loss, MulticlassLoss):
                # Bottou's heuristic needs the derivative's scale at margin
                # -typw: 1 for softmax and multiclass hinge, as for log/hinge.
                t0 = optimal_init(self.alpha, lambda p, y: -1.0)
            else:
                t0 = optimal_init(self.alpha, lambda p, y: fn(p, y, *params))
        return _engine.make_hyper(
            schedule=schedule,
            alpha=self.alpha,
            eta0=state.eta,
            power_t=self.power_t,
            optimal_init=t0,
            penalty=self.penalty,
            l1_ratio=self.l1_ratio if self.l1_ratio is not None else 0.0,
            fit_intercept=self.fit_intercept,
            batch_size=self.batch_size,
            clip_norm=self.clip_norm,
            clip_value=self.clip_value,
            average=self.average,
            dtype=dtype,
            curvature=loss.curvature,
            per_sample_floor=loss.per_sample_floor,
            smoothness=state.smoothness,
            momentum=self.momentum,
            nesterov=self.nesterov,
        )

    def _new_state(self, n_outputs, n_features, dtype, coef_init=None, intercept_init=None):
        # One draw from random_state seeds every shuffle of this state, as
        # scikit-learn's SGD seeds its per-call shuffles.
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        return _engine.EngineState(
            n_outputs,
            n_features,
            dtype,
            average=self.average > 0,
            l1=self.penalty in ("l1", "elasticnet"),
            eta0=self.eta0,
            shuffle_seed=seed,
            momentum=self.momentum > 0,
            coef_init=coef_init,
            intercept_init=intercept_init,
        )

    def _see_data(self, state, X, rows, sample_weight):
        """Update the data's smoothness behind the step caps (skgd._smoothness).

        The ``l_max`` values and the intercept's ``lam`` come from every
        batch of data; the weights' ``lam`` (an eigenvalue, which only
        matters for large batches) is estimated once, from the first data a
        state sees, so a stream of small chunks pays for it once.
        """
        seen = state.smoothness[0] if state.seen_data else None  # lam_w
        state.see_data(smoothness.estimate(X, rows, sample_weight, self.fit_intercept, lam_w=seen))
        state.seen_data = True

    def _objective(self, total_loss, weight_sum, state):
        coef, _ = state.weights()
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked next
            return total_loss / max(weight_sum, np.finfo(float).tiny) + _engine.penalty_value(
                coef, self.alpha, self.penalty, self.l1_ratio
            )

    def _check_finite(self, state, objective, epoch):
        if not (np.isfinite(objective) and state.is_finite()):
            raise ValueError(
                f"Training diverged at epoch {epoch}: the weights or the loss are "
                "no longer finite. Scale the features (e.g. StandardScaler), lower "
                "eta0, or set clip_norm."
            )

    def _run_epochs(self, X, Y, sample_weight, state, loss, *, rows, max_epochs,
                    validation=None):
        """The epoch driver: shuffle, one compiled pass, stopping rules.

        Returns
        -------
        n_iter : int
        curve : list of float
            Mean training objective (weighted loss + penalty) per epoch.
        val_scores : list of float
        """
        self._see_data(state, X, rows, sample_weight)
        hyper = self._hyper(state, loss, state.coef.dtype)
        weight_sum = float(sample_weight[rows].sum())
        curve, val_scores = [], []
        best, no_improvement = np.inf, 0
        use_tol = self.tol is not None
        start = time.perf_counter()
        n_iter = 0
        for epoch in range(1, max_epochs + 1):
            weighted, _ = _engine.run_pass(
                state, X, Y, sample_weight, rows, hyper, loss, self.shuffle
            )
            objective = self._objective(weighted, weight_sum, state)
            self._check_finite(state, objective, epoch)
            curve.append(objective)
            n_iter = epoch
            if self.verbose:
                coef, intercept = state.weights()
                print(
                    f"Epoch {epoch}: loss {objective:.6g}, |w| {np.linalg.norm(coef):.4g}, "
                    f"bias {intercept.mean():.4g}, eta {state.eta:.3g}, t {state.t:.0f}, "
                    f"{time.perf_counter() - start:.3f} s"
                )
            if validation is not None:
                coef, intercept = self._public_weights(state)
                score = self._score_weights(coef, intercept, *validation)
                val_scores.append(score)
                current = -score
            else:
                # The objective being minimised: weighted mean loss plus penalty.
                # (scikit-learn watches the unweighted loss; under strong class
                # weights that is dominated by samples that barely count, and
                # stops training too early.)
                current = objective
            if not use_tol:
                continue
            if current > best - self.tol:
                no_improvement += 1
            else:
                no_improvement = 0
            best = min(best, current)
            if no_improvement >= self.n_iter_no_change:
                if SCHEDULES[self.learning_rate] == ADAPTIVE and state.eta > 1e-6:
                    state.eta /= 5.0
                    hyper = hyper._replace(eta0=state.eta)
                    no_improvement = 0
                else:
                    break
        return n_iter, curve, val_scores

    def _public_weights(self, state):
        """coef, intercept as the user sees them (averaged once averaging began)."""
        avg = state.averaged_weights()
        if avg is not None and self.average <= state.t - 1:
            return avg
        return state.weights()

    def _fit_state(self, X, Y, sample_weight, state, loss, stratify):
        """Full training of ``fit``: split, epochs, convergence warning."""
        n = X.shape[0]
        rows = np.arange(n, dtype=np.int64)
        validation = None
        if self.early_stopping:
            rows, val = self._validation_split(n, stratify, sample_weight)
            validation = (X[val], stratify[val], sample_weight[val])
        n_iter, curve, val_scores = self._run_epochs(
            X, Y, sample_weight, state, loss, rows=rows, max_epochs=self.max_iter,
            validation=validation,
        )
        if self.tol is not None and n_iter == self.max_iter:
            warnings.warn(
                "Maximum number of iteration reached before convergence. Consider "
                "increasing max_iter to improve the fit.",
                ConvergenceWarning,
            )
        return n_iter, curve, val_scores

    def _validation_split(self, n, stratify, sample_weight):
        from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

        splitter = StratifiedShuffleSplit if self._is_classifier_like() else ShuffleSplit
        cv = splitter(test_size=self.validation_fraction, random_state=self.random_state)
        try:
            train, val = next(cv.split(np.zeros((n, 1)), stratify))
        except ValueError as exc:
            raise ValueError(
                f"Splitting {n} samples into a train set and a validation set with "
                f"validation_fraction={self.validation_fraction!r} failed ({exc}). "
                "Use more samples, change validation_fraction, or disable early_stopping."
            ) from exc
        if train.size == 0 or val.size == 0:
            raise ValueError(
                f"Splitting {n} samples with validation_fraction="
                f"{self.validation_fraction!r} led to an empty set. Use more samples, "
                "change validation_fraction, or disable early_stopping."
            )
        if not np.any(sample_weight[val] > 0):
            raise ValueError(
                "The sample weights for the validation set are all zero; use a "
                "different random_state."
            )
        return np.sort(train).astype(np.int64), np.sort(val)

    def _is_classifier_like(self):
        return False

    def _partial_state(self, X, Y, sample_weight, state, loss):
        """One pass over a chunk on a copy of ``state``; returns the new state.

        Training works on the copy, so a failed call changes nothing.
        """
        new = state.copy()
        rows = np.arange(X.shape[0], dtype=np.int64)
        _, curve, _ = self._run_epochs(X, Y, sample_weight, new, loss, rows=rows, max_epochs=1)
        return new, curve

    # ------------------------------------------------------------ predicting

    def _decision(self, X):
        if "coef_" not in self.__dict__:
            check_is_fitted(self)
        Xf = self._fast_X(X)
        if Xf is not None:
            return Xf @ self.coef_.T + self.intercept_
        X = self._validate_X(X, reset=False)
        return safe_sparse_dot(X, self.coef_.T, dense_output=True) + self.intercept_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


    # -------------------------------------------------------- bookkeeping

    @contextmanager
    def _unchanged_on_error(self):
        """Restore every attribute if the block raises.

        Training works on copies and assigns new objects at the end, so a
        shallow snapshot of ``__dict__`` is enough to undo a failed call.
        """
        saved = dict(self.__dict__)
        # The one object a call changes in place: a RandomState passed as
        # random_state, drawn from when a new state is seeded.
        rng = self.__dict__.get("random_state")
        rng_state = rng.get_state() if isinstance(rng, np.random.RandomState) else None
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            if rng_state is not None:
                rng.set_state(rng_state)
            raise

    def _commit(self, state, n_iter, curve, val_scores=None, *, incremental):
        """Publish a finished state as fitted attributes."""
        self._state = state
        self.n_iter_ = n_iter
        self.t_ = state.t
        if val_scores:
            self.validation_scores_ = list(val_scores)
            self.best_score_ = float(max(val_scores))
        coef, intercept = self._public_weights(state)
        dtype = state.coef.dtype
        self._set_weights(coef.astype(dtype, copy=False), intercept.astype(dtype, copy=False))
        if incremental and hasattr(self, "loss_curve_"):
            self.loss_curve_.extend(curve)  # last, in place: nothing can fail after it
        else:
            self.loss_curve_ = list(curve)

    def _init_arrays(self, n_outputs, n_features, coef_init, intercept_init):
        """Check ``coef_init`` / ``intercept_init``; fall back to warm start."""
        if self.warm_start and hasattr(self, "_state"):
            if self._state.coef.shape == (n_outputs, n_features):
                # As scikit-learn: warm values fill in only what is not given.
                warm_coef, warm_intercept = self._public_weights(self._state)
                coef_init = warm_coef if coef_init is None else coef_init
                intercept_init = warm_intercept if intercept_init is None else intercept_init
        if coef_init is not None:
            coef_init = np.asarray(coef_init, dtype=np.float64)
            if coef_init.size != n_outputs * n_features or (
                coef_init.ndim == 2 and coef_init.shape != (n_outputs, n_features)
            ):
                raise ValueError(
                    f"coef_init has shape {coef_init.shape}; expected "
                    f"({n_outputs}, {n_features})."
                )
            coef_init = coef_init.reshape(n_outputs, n_features)
        if intercept_init is not None:
            intercept_init = np.asarray(intercept_init, dtype=np.float64).reshape(-1)
            if intercept_init.shape != (n_outputs,):
                raise ValueError(
                    f"intercept_init has shape {intercept_init.shape}; expected "
                    f"({n_outputs},)."
                )
        for name, init in (("coef_init", coef_init), ("intercept_init", intercept_init)):
            if init is not None and not np.isfinite(init).all():
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(init))[0])
                raise ValueError(
                    f"{name} must be finite; got {init[bad]} at index {bad}."
                )
        return coef_init, intercept_init
