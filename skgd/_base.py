"""What both estimators share: parameters, validation, the epoch driver,
early stopping and ``partial_fit`` bookkeeping."""

import functools
import math
import os
import sys
import sysconfig
import time
import warnings
from collections import namedtuple
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import _assert_all_finite, check_is_fitted, validate_data

try:  # scikit-learn >= 1.9: the sparse type its configuration asks for
    from sklearn.utils import _align_api_if_sparse as _align_sparse_api
except ImportError:  # pragma: no cover - older scikit-learn returns csr_matrix
    def _align_sparse_api(X):
        return sp.csr_matrix(X)

from . import _engine, _kernels, _report
from . import _smoothness as smoothness
from ._stopping import StoppingRule, patience_epochs
from .exceptions import StepCapWarning
from .losses import Loss, MulticlassLoss, get_loss
from .schedules import (
    ADAPTIVE,
    AUTO,
    AUTO_MOMENTUM,
    CONSTANT,
    INVSCALING,
    OPTIMAL,
    PA_LOSSES,
    SCHEDULES,
    is_passive_aggressive,
    optimal_init,
)

_FLOATS = [np.float64, np.float32]
_INDEX_TYPES = [np.int32, np.int64]
_TINY = float(np.finfo(float).tiny)
# Values below this pass the fast finiteness-and-magnitude check of a fitted
# model's input: their squares, summed over any array, stay finite.
_FAST_LIMIT = 1e150
# Taken as divergence even while finite: the weights' squared norm growing
# by this factor in one pass, to at least this value (ten orders of
# magnitude of the norm; the second condition spares a stream that starts
# from nearly-zero weights).
_EXPLOSION = 1e20
# An uncapped batch-1 attempt (see BaseMinibatchSGD._uncapped_first) counts
# as diverged when a pass's mean objective exceeds this many times the
# targets' mean square (plus one; about what predicting zero costs), which
# no run that trains comes near: on abalone, runs that train stay within
# 40 times it, while diverging ones reach 1e47 to 1e205 times it, or
# overflow, in their first epoch (scikit-learn's, which clamps the
# derivatives at 1e12, ends at R^2 of about -1e23). A stream's chunk whose
# features grow 1000-fold reached 1e9 times it, its weights 1e4 (from 1).
_BLOWUP = 1e6
# Built-in losses whose step stays capped at batch_size=1 although the
# uncapped steps cannot diverge: modified Huber's oscillate across its
# quadratic zone, and scikit-learn's own run fails check_classifiers_train
# (see skgd.losses.ModifiedHuber).
_ALWAYS_CAPPED = frozenset({"modified_huber"})
_CSR_TYPES = (sp.csr_matrix, sp.csr_array)


@functools.cache
def _param_names(cls):
    return frozenset(cls._get_param_names())


def _sum_of_squares(v):
    """``sum(v ** 2)`` without BLAS: its threads wake up for a reduction this
    small and cost milliseconds on a busy machine."""
    flat = v.reshape(-1)
    return np.einsum("i,i->", flat, flat)


class _Diverged(ValueError):
    """Training diverged (a ValueError, with scikit-learn's words): at
    ``epoch``, for the reason ``what``."""

    def __init__(self, epoch, what):
        super().__init__(_diverged(epoch, what))
        self.epoch = epoch
        self.what = what

    def __reduce__(self):  # from a worker process (joblib, Dask) as it was raised
        return type(self), (self.epoch, self.what)


class _RetryCapped(Exception):
    """An uncapped ``partial_fit`` pass diverged (:class:`_Diverged`
    ``diverged``): its call runs again under the step caps."""

    def __init__(self, diverged):
        super().__init__(str(diverged))
        self.diverged = diverged


@functools.cache
def _library_prefixes():
    """Folders of the code between a user's line and skgd's warnings: skgd,
    scikit-learn (Pipeline, GridSearchCV), joblib, the standard library."""
    import joblib
    import sklearn

    prefixes = [os.path.dirname(os.path.abspath(m.__file__)) + os.sep
                for m in (sys.modules[__package__], sklearn, joblib)]
    stdlib = sysconfig.get_paths()["stdlib"]
    return tuple(prefixes), os.path.abspath(stdlib) + os.sep


@functools.cache
def _site_prefixes():
    paths = sysconfig.get_paths()
    return tuple({os.path.abspath(paths[k]) + os.sep for k in ("purelib", "platlib")})


def _in_library(filename, prefixes, stdlib):
    if filename.startswith("<frozen"):
        return True
    filename = os.path.abspath(filename)
    if filename.startswith(prefixes):
        return True
    return filename.startswith(stdlib) and not filename.startswith(_site_prefixes())


def _warn_user(message, category):
    """``warnings.warn`` attributed to the user's line: the first frame
    outside skgd, and past scikit-learn's, joblib's and the standard
    library's frames above it when the stack leads out of them (a Pipeline
    or a GridSearchCV called by the user); else (a worker process or
    thread, whose stack ends inside those) the first frame outside skgd."""
    prefixes, stdlib = _library_prefixes()
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            prefixes[0]):
        frame, level = frame.f_back, level + 1
    outside = level
    while frame is not None and _in_library(frame.f_code.co_filename, prefixes, stdlib):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=outside if frame is None else level)


def _diverged(epoch, what):
    """The message of a run that diverged: scikit-learn's words first (code
    matches on them), then what happened and what else may help."""
    return (
        f"Floating-point under-/overflow occurred at epoch #{epoch}. Scaling input data "
        f"with StandardScaler or MinMaxScaler might help. Training diverged: {what}; "
        "lowering eta0 or setting clip_norm may help too."
    )


def _check_weight_magnitude(weights, name):
    """Refuse weights so large that weighted gradients overflow float64."""
    if not np.isfinite(_sum_of_squares(np.asarray(weights, dtype=np.float64))):
        raise ValueError(
            f"{name} has values too large to train on (largest "
            f"{float(np.max(weights)):.3g}): weighted gradients overflow float64. Only the "
            "ratios between weights matter to the model; divide them by their mean."
        )


def _squares_finite(X):
    """Whether the sum of the squared values of X is finite (from its row
    norms, which the step caps read again in the same call)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(smoothness.row_sq_norms(X).sum()))


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
        if np.isfinite(_sum_of_squares(v)):
            return
    big = float(max(abs(v.max()), abs(v.min())))
    raise ValueError(
        f"X has values too large to train on (largest magnitude {big:.3g}): the "
        "sum of their squares overflows float64. Scale the features (e.g. "
        "StandardScaler)."
    )


def _check_csr_structure(X):
    """Refuse a CSR matrix whose structure would send compiled code outside
    its arrays: column indices out of range, or an ``indptr`` that is not a
    non-decreasing run from 0 to the number of stored values. (scipy does
    not check this when a matrix is built from raw arrays.) Costs one pass
    over the indices.
    """
    indices, indptr = X.indices, X.indptr
    n_rows, n_features = X.shape
    if (indptr.shape != (n_rows + 1,) or indptr[0] != 0
            or indptr[-1] != indices.shape[0] or indices.shape[0] != X.data.shape[0]
            or (n_rows and np.diff(indptr).min() < 0)):
        raise ValueError(
            "X is a malformed CSR matrix: its indptr must run from 0 to the number "
            f"of stored values ({X.data.shape[0]}) without decreasing, one entry per "
            "row plus one. Rebuild it with scipy.sparse.csr_matrix((data, indices, "
            "indptr), shape=...) and check it with X.check_format()."
        )
    if indices.size:
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= n_features:
            bad = low if low < 0 else high
            raise ValueError(
                f"X is a malformed CSR matrix: its column indices must lie in [0, "
                f"{n_features}) but include {bad}. Check how it was built "
                "(X.check_format() reports this too)."
            )


# Where the documentation's API pages live (the "?" link of the HTML repr
# in notebooks, as scikit-learn's estimators have).
DOCS_URL = "https://skgd.readthedocs.io/en/latest/"


class BaseMinibatchSGD(BaseEstimator):
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
        cached = self.__dict__.get("_checked_params")
        if cached is not None and cached[0] == for_partial_fit:
            return  # no parameter was assigned since (see __setattr__)
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
        if self.learning_rate == "auto" and self.momentum > 0:
            raise ValueError(
                f"momentum={self.momentum!r} cannot be combined with learning_rate='auto', "
                "which sets its own momentum (on dense data, for the steps its cap "
                "shortens). Use momentum=0, or another learning_rate."
            )
        if self.penalty == "elasticnet" and self.l1_ratio is None:
            raise ValueError("l1_ratio must be set when penalty is 'elasticnet'.")
        if self.learning_rate in ("pa1", "pa2"):
            needed = PA_LOSSES["classifier" if is_classifier(self) else "regressor"]
            if getattr(self, "multi_class", "ovr") == "multinomial":
                raise ValueError(
                    f"Learning rate '{self.learning_rate}' (passive-aggressive) is defined "
                    "for binary and one-vs-rest problems, not for multi_class='multinomial'."
                )
            if self.loss != needed:
                raise ValueError(
                    f"Learning rate '{self.learning_rate}' only works with loss "
                    f"'{needed}' (passive-aggressive steps are defined for it); got "
                    f"loss={self.loss!r}."
                )
        if self.power_t < 0:
            warnings.warn(
                "Negative values for `power_t` are deprecated in version 1.8 and will "
                "raise an error in 1.10. Use values in the range [0.0, inf) instead. "
                "(As scikit-learn: a negative power_t makes the 'invscaling' rate grow.)",
                FutureWarning,
                stacklevel=3,
            )
        # a fresh object: the per-call plan is cached against its identity
        self.__dict__["_checked_params"] = (for_partial_fit, object())

    def __setattr__(self, name, value):
        # Assigning a constructor parameter (set_params does too) means the
        # next call validates the parameters again and rebuilds its plan.
        if name in _param_names(type(self)):
            self.__dict__.pop("_checked_params", None)
        super().__setattr__(name, value)

    def _fast_X(self, X, training=False):
        """Validate a fitted model's input cheaply in the common case.

        C-ordered float ndarrays and CSR matrices (int32 or int64 indices) of
        the right width, with every value finite and no feature names to
        compare, pass here in microseconds: a stream of small chunks pays
        about what its data costs to read. Anything else returns None and
        goes through scikit-learn's ``validate_data`` (so every error message
        stays the same). For training, float64 data must also have a finite
        sum of squares (see ``_check_magnitude``); that costs the same pass.
        """
        if "feature_names_in_" in self.__dict__:
            return None
        if type(X) is np.ndarray:
            if X.ndim != 2 or X.dtype not in _FLOATS or not X.flags.c_contiguous:
                return None
            values = X
        elif type(X) in _CSR_TYPES:
            if X.data.dtype not in _FLOATS or X.indices.dtype not in _INDEX_TYPES:
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
            limit = _FAST_LIMIT if training else np.inf
            if not (-limit < low and high < limit):
                return None
        if values is not X:
            _check_csr_structure(X)
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
        kind = getattr(getattr(X, "dtype", None), "kind", None)
        if kind in ("M", "m"):
            raise TypeError(
                f"X has dtype {X.dtype}: dates and durations are not numeric features. "
                "Convert them to numbers first (e.g. seconds since a reference date)."
            )
        if isinstance(y, str) and y == "no_validation":
            X = validate_data(self, X, **kwargs)
            if sp.issparse(X):
                _check_csr_structure(X)
            return X
        # One pass checks both: a finite sum of squares means every value is
        # finite and none too large; only otherwise does scikit-learn's
        # finiteness check run, to name a NaN or infinity as it does.
        X, y = validate_data(self, X, y, y_numeric=y_numeric, ensure_all_finite=False,
                             **kwargs)
        if sp.issparse(X):
            _check_csr_structure(X)
        if not _squares_finite(X):
            _assert_all_finite(X.data if sp.issparse(X) else X, input_name="X",
                               estimator_name=type(self).__name__)
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
        _check_weight_magnitude(sw, "sample_weight")
        return sw

    def _loss_object(self):
        return get_loss(self.loss, self.epsilon, self._loss_names)

    # --------------------------------------------------------------- engine

    def _plan(self):
        """What every pass of this configuration needs, built once per
        parameter setting (a stream pays for it on its first call): the loss,
        its kernel form and parameters, the update rule, and 'optimal''s t0.
        """
        fingerprint = self.__dict__.get("_checked_params")
        cached = self.__dict__.get("_plan_cache")
        if cached is not None and cached[0] is fingerprint:
            return cached[1]
        loss = self._loss_object()
        loss.check_params()
        _, l1 = _engine.penalty_strengths(self.penalty, self.alpha, self._l1_ratio())
        t0 = 0.0
        if SCHEDULES[self.learning_rate] == OPTIMAL:
            if isinstance(loss, MulticlassLoss):
                # Bottou's heuristic needs the derivative's scale at margin
                # -typw: 1 for softmax and multiclass hinge, as for log/hinge.
                t0 = optimal_init(self.alpha, lambda p, y: -1.0)
            else:
                # the plain Python function: one call is not worth a compilation
                fn, params = getattr(loss.dloss, "py_func", loss.dloss), loss.params()
                t0 = optimal_init(self.alpha, lambda p, y: fn(p, y, *params))
            if not (t0 + 1.0 > 1.0):
                raise ValueError(
                    f"alpha={self.alpha!r} is too large for learning_rate='optimal': its "
                    f"offset t0 = {t0:.3g} vanishes next to the sample count, so the rate "
                    "1 / (alpha * (t0 + t - 1)) wipes out every weight at each step. Use a "
                    "smaller alpha (the regularisation strength; 1e-6 to 1e-1 is usual) or "
                    "another learning_rate."
                )
        plan = _Plan(
            loss=loss,
            spec=_engine.loss_spec(loss),
            params=loss.params(),
            rule=_engine.make_rule(clip_value=self.clip_value, clip_norm=self.clip_norm,
                                   momentum=self.momentum, nesterov=self.nesterov, l1=l1,
                                   average=self._average()),
            optimal_init=t0,
        )
        self._plan_cache = (fingerprint, plan)
        return plan

    def _average(self):
        """``average`` as training uses it: 'auto' always averages (weights
        growing as t^2 are part of its rule, see skgd._kernels.auto_rate);
        an int still says when its averaging begins."""
        if SCHEDULES[self.learning_rate] == AUTO and not self.average:
            return True
        return self.average

    def _l1_ratio(self):
        return self.l1_ratio if self.l1_ratio is not None else 0.0

    def _scikit_learns_algorithm(self, plan, batch_size, capped=True):
        """Whether a run takes scikit-learn's steps: per sample, a built-in
        loss whose step cap cannot bind (or, ``capped=False``, is off: see
        :meth:`_uncapped_first`), no clipping, no momentum. Such a run stops
        by scikit-learn's ``tol`` rule (the unweighted loss along the
        epoch); any other watches the weighted objective it minimises,
        since its steps differ from those scikit-learn's rule was made for
        (under strong class weights the unweighted loss of capped or clipped
        steps can rise while the weighted objective falls)."""
        rule, loss = plan.rule, plan.loss
        return (batch_size == 1 and isinstance(self.loss, str)
                and (not capped or not loss.curvature or loss.per_sample_floor)
                and rule.clip_value is None and rule.clip_norm is None
                and rule.momentum is None)

    def _uncapped_first(self, plan):
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
        (:meth:`_run_epochs`). The others keep their caps: minibatches
        (what makes the defaults robust to ``batch_size``), 'auto' (its
        own), clipping and momentum (not scikit-learn's algorithm), user
        losses (their curvature asks for the cap), modified Huber
        (``_ALWAYS_CAPPED``)."""
        loss = plan.loss
        return (self.batch_size == 1 and bool(loss.curvature) and not loss.per_sample_floor
                and isinstance(self.loss, str) and self.loss not in _ALWAYS_CAPPED
                and SCHEDULES[self.learning_rate] != AUTO
                and self._scikit_learns_algorithm(plan, 1, capped=False))

    def _warn_if_capped(self, state, hyper, diverged=None, stream=False):
        """Say, in one :class:`~skgd.StepCapWarning`, which steps the caps
        shorten and by how much, attributed to the user's line.

        ``diverged`` (a :class:`_Diverged`): scikit-learn's uncapped
        per-sample steps diverged, and the run starts again under the caps
        (:meth:`_uncapped_first`); said whatever the schedule. Otherwise
        only the steps a user chose are warned about: those of an ``eta0``
        schedule, when a cap shortens the first step of this call (the
        schedules only decay, so a cap that does not bind then never does).
        A ``fit`` warns at most once; a stream (``stream``, ``partial_fit``)
        once for its parameter setting.
        """
        token = self.__dict__.get("_checked_params")
        if stream and self.__dict__.get("_cap_warned") is token:
            return
        schedule = SCHEDULES[self.learning_rate]
        if diverged is None and schedule not in (CONSTANT, INVSCALING, ADAPTIVE):
            return
        asked, eta, eta_b, _ = _cap_at(hyper, state.t)
        asked_b = asked * float(hyper[_kernels.H_INTERCEPT_DECAY])
        cut = [(name, before, after) for name, before, after in (
            ("weights'", asked, eta), ("intercept's", asked_b, eta_b))
            if after < before * (1.0 - 1e-9)]
        if not cut:
            return
        self.__dict__["_cap_warned"] = token
        m = int(hyper[_kernels.H_BATCH_SIZE])
        steps = " and ".join(f"the {name} step from {before:.3g} to {after:.3g}"
                             for name, before, after in cut)
        asked_for = (f"eta0={self.eta0!r}" if schedule != OPTIMAL
                     else f"learning_rate='optimal', alpha={self.alpha!r}")
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
        limit = room * (asked / m if schedule == OPTIMAL else self.eta0)
        _warn_user(f"{head} {self._cap_advice(state, m, limit)} (See the user guide, "
                   "'Batch size and step size'.)", StepCapWarning)

    def _cap_advice(self, state, batch_size, limit):
        """What would let the steps asked for be taken, from what sets the cap:
        a smaller rate always (``limit``: the largest ``eta0`` the caps leave
        as it is, for a constant rate after 'optimal'); a few rows far longer
        than the rest (outliers, which standardising does not shrink); long
        rows of dense data (features far from unit scale). Sparse or
        normalised rows (text) get no advice to scale features: theirs
        already are."""
        if SCHEDULES[self.learning_rate] == OPTIMAL:
            tips = [f"learning_rate='constant' with eta0 <= {limit:.3g}"]
        else:
            tips = [f"eta0 <= {limit:.3g}"]
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

    def _rule(self, state, plan):
        """The update rule of a pass: the plan's, and with 'auto' on dense
        data (as the first data decided: see :meth:`_see_data`) momentum of
        at most ``AUTO_MOMENTUM`` for the steps the cap shortens. On sparse
        data 'auto' takes none: momentum moves every weight at every step."""
        if SCHEDULES[self.learning_rate] == AUTO and state.intercept_decay == 1.0:
            return plan.rule._replace(momentum=(AUTO_MOMENTUM, False))
        return plan.rule

    def _hyper(self, state, plan, n_rows, online=False, capped=None):
        """The run-time hyper-parameters of a pass (the state must have seen
        data: see :meth:`_see_data`). ``capped``: True with the step caps,
        False without them; None (the default): without them where
        :meth:`_uncapped_first` holds and they would not shorten the first
        step (the same steps, stopped by scikit-learn's rule), else with
        them."""
        if capped is None:
            hyper = self._hyper(state, plan, n_rows, online, capped=True)
            if self._uncapped_first(plan) and not _cap_at(hyper, state.t)[3]:
                return self._hyper(state, plan, n_rows, online, capped=False)
            return hyper
        # a batch larger than the data is the whole data
        batch_size = min(self.batch_size, max(n_rows, 1))
        # A stream's calls mostly need the same values: reuse them while
        # the parameters (their check's token) and what the state adds are
        # unchanged.
        token = self.__dict__.get("_checked_params")
        key = (token, batch_size, online, state.eta, state.smoothness,
               state.intercept_decay, state.row_sq, state.coef.dtype)
        cached = self.__dict__.get("_hyper_cache")
        if token is None or cached is None or cached[0] != key:
            cached = self.__dict__["_hyper_cache"] = (key, {})
        if capped in cached[1]:
            return cached[1][capped]
        loss = plan.loss
        auto = SCHEDULES[self.learning_rate] == AUTO
        hyper = cached[1][capped] = _engine.make_hyper(
            schedule=SCHEDULES[self.learning_rate],
            alpha=self.alpha,
            eta0=state.eta,
            power_t=self.power_t,
            optimal_init=plan.optimal_init,
            penalty=self.penalty,
            l1_ratio=self._l1_ratio(),
            fit_intercept=self.fit_intercept,
            batch_size=batch_size,
            average=self._average(),
            dtype=state.coef.dtype,
            curvature=loss.curvature if capped else None,
            per_sample_floor=loss.per_sample_floor,
            smoothness=state.smoothness,
            weighted_objective=not self._scikit_learns_algorithm(plan, batch_size, capped),
            # 'auto''s own caps keep the intercept's steps in check
            intercept_decay=1.0 if auto else state.intercept_decay,
            row_sq=state.row_sq,
            online=online,
        )
        return hyper

    def _shuffle_seed(self):
        """One draw from random_state seeds every shuffle of a state, as
        scikit-learn's SGD seeds its per-call shuffles."""
        return check_random_state(self.random_state).randint(np.iinfo(np.int32).max)

    def _new_state(self, n_outputs, n_features, dtype, coef_init=None, intercept_init=None,
                   *, for_fit=False):
        # fit draws the seed after its validation split (see _fit_state), as
        # scikit-learn does: a RandomState instance then gives its split
        seed = 0 if for_fit else self._shuffle_seed()
        # a new model: its steps are not known to need the cap (see
        # _uncapped_first), and it has not been warned about
        self.__dict__.pop("_needs_cap", None)
        self.__dict__.pop("_cap_warned", None)
        return _engine.EngineState(n_outputs, n_features, dtype, shuffle_seed=seed,
                                   eta0=self.eta0, outputs=self._outputs(),
                                   coef_init=coef_init, intercept_init=intercept_init)

    def _outputs(self):
        """What the engine's outputs mean (a stream may not change it)."""
        return "regression"

    def _see_data(self, state, X, rows, sample_weight, loss):
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
        if state.intercept_decay is None:  # decided by the first data, then kept
            state.intercept_decay = _engine.sparse_intercept_decay(X)
        auto = SCHEDULES[self.learning_rate] == AUTO
        if auto:  # the scale of its gradients (see skgd._kernels.auto_rate)
            state.row_sq = max(state.row_sq, smoothness.mean_row_sq(X, rows))
        if (not loss.curvature or (loss.per_sample_floor and self.batch_size == 1 and not auto)
                or is_passive_aggressive(SCHEDULES[self.learning_rate])):
            return
        chunk, trace = smoothness.estimate_with_trace(
            X, rows, sample_weight, self.fit_intercept, lam_w=state.smoothness[0])
        if state.lam_trace is None or trace > state.lam_trace:
            # larger rows than lam_w was estimated on: estimate it again
            chunk = chunk._replace(lam_w=smoothness.largest_eigenvalue(X, rows, sample_weight))
            state.lam_trace = trace
        state.see_data(chunk)

    @staticmethod
    def _raise_loss_failure(prepared, plan):
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

    def _check_finite(self, state, objective, epoch, full=True, norm_before=None):
        """Raise if training diverged: a non-finite loss or state, or (given
        ``norm_before``, the weights' squared norm before the pass) weights
        that grew by ten orders of magnitude in one pass while staying finite.
        """
        if not (math.isfinite(objective) and state.is_finite(full=full)):
            raise _Diverged(epoch, "the weights or the loss are no longer finite")
        if norm_before:
            norm = state.squared_norm()
            growth = norm / norm_before
            if growth > _EXPLOSION and norm > _EXPLOSION:
                raise _Diverged(
                    epoch, f"the weights grew by a factor of {np.sqrt(growth):.3g} in one pass")

    def _run_epochs(self, X, Y, sample_weight, state, plan, *, rows, max_epochs,
                    validation=None, out_weight=None):
        """The epoch driver: shuffle, one compiled pass, stopping rules.

        Each problem (each class in one-vs-rest, else the whole model) stops
        on its own, as in scikit-learn: a stopped class's derivatives get
        weight zero in the passes that go on for the others, and its weights
        as they were when it stopped are put back at the end. With a
        validation set, training ends as it was after its best epoch (see
        :meth:`_epoch_loop`).

        Where the step caps would shorten scikit-learn's per-sample steps
        (:meth:`_uncapped_first`), the run takes them uncapped; if that
        diverges, it starts again from the same state under the caps, and
        says so (:meth:`_warn_if_capped`). Diverging runs mostly do so in
        their first epoch: that epoch is the price.

        Returns
        -------
        n_iter : int
            Epochs run (the largest over the problems).
        curve : list of float
            The training objective per epoch (summed over the problems).
        val_scores : list of float
        """
        self._restart_rate(state)
        self._see_data(state, X, rows, _largest_weights(sample_weight, Y, out_weight),
                       plan.loss)
        rule = self._rule(state, plan)
        state.conform(rule)
        hyper = self._hyper(state, plan, rows.size)
        diverged = None
        if self._uncapped_first(plan) and _cap_at(hyper, state.t)[3]:
            start = state.copy()
            weights = None if out_weight is None else out_weight.copy()
            try:
                return self._run_pass_epochs(
                    X, Y, sample_weight, state, plan, rule,
                    self._hyper(state, plan, rows.size, capped=False), rows=rows,
                    max_epochs=max_epochs, validation=validation, out_weight=out_weight,
                    blowup=_blowup_level(Y, rows, state))
            except _Diverged as exc:
                diverged = exc
                state.restore(start)
                out_weight = weights
                self.__dict__["_needs_cap"] = True  # and so does a stream from here
                if self.verbose:
                    print(f"-- Diverged in epoch {exc.epoch} ({exc.what}): "
                          "training again under the step cap")
        self._warn_if_capped(state, hyper, diverged)
        return self._run_pass_epochs(X, Y, sample_weight, state, plan, rule, hyper, rows=rows,
                                     max_epochs=max_epochs, validation=validation,
                                     out_weight=out_weight)

    def _run_pass_epochs(self, X, Y, sample_weight, state, plan, rule, hyper, *, rows,
                         max_epochs, validation, out_weight, blowup=None):
        """The epochs of :meth:`_run_epochs` with the run-time values ``hyper``."""
        out_weight = self._problem_weights(state, out_weight)
        with _engine.prepare_pass(state, X, Y, sample_weight, rows, hyper, rule, plan.spec,
                                  plan.params, self.shuffle,
                                  parts=self._output_parts(state, X, rows, hyper, rule),
                                  out_weight=out_weight, verbose=bool(self.verbose)) as prepared:
            return self._epoch_loop(state, plan, prepared, hyper, n_rows=rows.size,
                                    max_epochs=max_epochs, validation=validation,
                                    out_weight=out_weight, blowup=blowup)

    def _output_parts(self, state, X, rows, hyper, rule):
        """How a pass splits its outputs across threads (``n_jobs``): slices
        of the outputs, or None for one pass on the caller's thread.

        Only one-vs-rest problems split, where each output's steps are its
        own (see ``skgd._engine.splittable``), so that the model is the one
        pass's whatever ``n_jobs`` is; and only into parts with work enough
        to pay for a thread (``skgd._engine.most_parts``). Binary models,
        multinomial ones and regressors have one problem whose outputs
        step together: they stay whole.
        """
        if not (self._per_output_problems(state) and _engine.splittable(hyper, rule)):
            return None
        most = _engine.most_parts(X, rows, state.n_outputs)
        n_parts = min(most, self._n_threads()) if most > 1 else 1
        return _engine.output_parts(state.n_outputs, n_parts) if n_parts > 1 else None

    def _n_threads(self):
        """How many threads a pass may use (``n_jobs``, where there is one)."""
        return 1

    def _problem_weights(self, state, out_weight):
        """The output weights a pass reads, ones by default in one-vs-rest:
        the epoch loop writes a stopped class's to zero (see
        :meth:`_epoch_loop`)."""
        if self._per_output_problems(state) and out_weight is None:
            return np.ones((state.n_outputs, 2))
        return out_weight

    def _epoch_loop(self, state, plan, prepared, hyper, *, n_rows, max_epochs,
                    validation=None, out_weight=None, blowup=None):
        """The epochs of :meth:`_run_epochs` over a prepared pass: run it,
        check it, apply the stopping rules.

        ``prepared`` is an :class:`_engine.Pass`, or anything with its
        ``run``, ``loss_failure`` and ``set_eta0`` that trains ``state`` in
        place (the parameter-mixing pass of ``skgd.dask`` and
        ``skgd.DataParallel``, ``skgd._mixing``, runs each epoch on workers and
        brings the state up to date in a ``finish`` called once after the
        last epoch, before the best epoch or the stopped classes are put
        back); ``out_weight``
        is the array it reads, written here when a class stops. Returns
        what :meth:`_run_epochs` returns. ``blowup``: a mean objective
        above which a problem counts as diverged (:func:`_check_blowup`).

        Given a ``validation`` set, the state ends as it was after the epoch
        whose model scored best on it (see :class:`_BestEpoch`), not after
        the last epoch: the whole training state (weights, averages,
        velocity, L1 ledger, clock), so ``t_`` and a later ``partial_fit``
        go on from it, with the one-vs-rest classes that had stopped by then
        as they stopped. The epochs after it still count in ``n_iter``, the
        curve and the scores, as in scikit-learn.
        """
        per_output = self._per_output_problems(state)
        base_weight = None if out_weight is None else out_weight.copy()
        n_problems = state.n_outputs if per_output else 1
        rule = StoppingRule(n_problems, self.tol, patience_epochs(
            self.n_iter_no_change, n_rows, int(hyper.batch_size)))
        rates = np.full(n_problems, state.eta)
        adaptive = SCHEDULES[self.learning_rate] == ADAPTIVE

        def lower_rate(k):
            if adaptive and rates[k] > 1e-6:
                rates[k] /= 5.0
                return True
            return False

        latest = np.zeros(n_problems)
        t_end = state.t + max_epochs * n_rows
        frozen = {}
        best = _BestEpoch()
        curve, val_scores = [], []
        start = time.perf_counter()
        for epoch in range(1, max_epochs + 1):
            norm_before = state.squared_norm()
            sums = prepared.run()
            self._raise_loss_failure(prepared, plan)
            objectives = _mean_objectives(sums, per_output)
            latest[rule.active] = objectives[rule.active]
            objective = float(latest.sum())
            self._check_finite(state, objective, epoch, full=False, norm_before=norm_before)
            _check_blowup(objectives, epoch, blowup)
            curve.append(objective)
            if validation is not None:
                Xv, yv, swv = validation
                scores = self._state_scores(state, Xv)
                for k, snap in frozen.items():  # stopped classes: as they will be
                    scores[:, k] = _snapshot_scores(Xv, snap, self._averaged(state))
                val_scores.append(self._score_scores(scores, yv, swv))
                current = -(self._problem_scores(scores, yv, swv) if per_output
                            else np.array([val_scores[-1]]))
                best.see(epoch, val_scores[-1], state, frozen)
            else:
                # scikit-learn's criterion: the mean over the rows of loss
                # plus penalty, each at the weights the row saw
                current = objectives
            if self.verbose:
                print(_report.epoch_line(epoch, objective, state, _cap_at(hyper, state.t)[1],
                                         time.perf_counter() - start,
                                         val_scores[-1] if validation is not None else None))
            held = _cap_holds_decay(hyper, state.t, t_end)
            for k in rule.update(epoch, current, lower_rate, hold=held):
                if per_output:
                    frozen[k] = state.snapshot_output(k)
                    out_weight[k] = 0.0
            if rule.done:
                break
            if adaptive and rates[rule.active].max() != state.eta:
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
        if self.verbose:
            print(_report.stop_line(
                n_iter, time.perf_counter() - start, converged=rule.done, tol=self.tol,
                patience=rule.patience, early_stopping=validation is not None,
                class_epochs=rule.n_iter.tolist() if per_output else None,
                best_epoch=best.epoch if best.state is not None else None))
        return n_iter, curve, val_scores

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

    def _averaged(self, state):
        """Whether the published model is the averaged one (averaging on and
        past its start)."""
        average = self._average()
        return bool(average) and state.averaging() and average <= state.t - 1

    def _published_average(self):
        """Whether the published model is the averaged one: decided when a
        training call publishes it, as scikit-learn's ``coef_`` is (changing
        ``average`` afterwards changes nothing until the next call)."""
        return self.__dict__.get("_averaged_published", False)

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

    def _fit_state(self, X, Y, sample_weight, state, stratify, out_weight=None):
        """Full training of ``fit``: split, epochs, convergence warning."""
        n = X.shape[0]
        rows = np.arange(n, dtype=np.int64)
        X = _engine.narrow_indices(X)
        validation = None
        if self.early_stopping:
            rows, val = self._validation_split(n, stratify, sample_weight)
            validation = (X[val], stratify[val], sample_weight[val])
        state.shuffle_seed = self._shuffle_seed()
        n_iter, curve, val_scores = self._run_epochs(
            X, Y, sample_weight, state, self._plan(), rows=rows, max_epochs=self.max_iter,
            validation=validation, out_weight=out_weight,
        )
        self._warn_if_not_converged(n_iter, stacklevel=4)
        return n_iter, curve, val_scores

    def _warn_if_not_converged(self, n_iter, stacklevel):
        """scikit-learn's ConvergenceWarning when ``fit`` ran all its epochs."""
        if self.tol is not None and n_iter == self.max_iter:
            warnings.warn(
                "Maximum number of iteration reached before convergence. Consider "
                "increasing max_iter to improve the fit.",
                ConvergenceWarning,
                stacklevel=stacklevel,
            )

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
            # scikit-learn's words, then which parameters decide the split
            raise ValueError(
                "The sample weights for validation set are all zero, consider using a "
                "different random state. (random_state and validation_fraction decide "
                "the split.)"
            )
        return np.sort(train).astype(np.int64), np.sort(val)

    def _is_classifier_like(self):
        return False

    def _partial_state(self, X, Y, sample_weight, state, undo, out_weight=None):
        """One pass over a chunk, in place; what it changes is recorded in
        ``undo`` (a list the caller rolls back if the call fails).

        As in ``fit`` (:meth:`_run_epochs`), a pass whose steps the caps
        would shorten takes scikit-learn's uncapped steps; if they diverge,
        the pass is undone and runs again under the caps, as do the
        stream's later calls."""
        plan = self._plan()
        assigned = self.__dict__.get("_assigned_coef")
        try:
            return self._partial_pass(X, Y, sample_weight, state, undo, plan, out_weight,
                                      capped=bool(self.__dict__.get("_needs_cap")))
        except _RetryCapped as retry:
            undo.pop().rollback()
            if assigned is not None:  # taken by the attempt; its weights are back
                self.__dict__["_assigned_coef"] = assigned
            self.__dict__["_needs_cap"] = True
            return self._partial_pass(X, Y, sample_weight, state, undo, plan, out_weight,
                                      capped=True, diverged=retry.diverged)

    def _restart_rate(self, state):
        """Start a training call at ``eta0`` as it is now, as scikit-learn
        does: a ``set_params(eta0=...)`` between ``partial_fit`` calls (or
        before a warm-started ``fit``) takes effect, and the 'adaptive'
        schedule lowers the rate within a call only."""
        state.eta = float(self.eta0)

    def _partial_pass(self, X, Y, sample_weight, state, undo, plan, out_weight, *, capped,
                      diverged=None):
        """The pass of :meth:`_partial_state`; ``capped``: under the caps
        whatever :meth:`_uncapped_first` says. Raises :class:`_RetryCapped`
        when an uncapped attempt diverged."""
        rows = np.arange(X.shape[0], dtype=np.int64)
        record = _engine.Undo(state)
        undo.append(record)
        self._adopt_writes(state)
        self._restart_rate(state)
        self._see_data(state, X, rows, _largest_weights(sample_weight, Y, out_weight),
                       plan.loss)
        rule = self._rule(state, plan)
        state.conform(rule)
        hyper = self._hyper(state, plan, rows.size, online=True, capped=capped or None)
        attempt = not capped and self._uncapped_first(plan) and _cap_at(hyper, state.t)[3]
        if attempt:
            hyper = self._hyper(state, plan, rows.size, online=True, capped=False)
        else:
            self._warn_if_capped(state, hyper, diverged, stream=True)
        parts = self._output_parts(state, X, rows, hyper, rule)
        record.prepare(X, rows, hyper, rule, parts)
        norm_before = state.squared_norm()
        with _engine.prepare_pass(state, X, Y, sample_weight, rows, hyper, rule, plan.spec,
                                  plan.params, self.shuffle, parts=parts,
                                  journals=record.journals, out_weight=out_weight,
                                  verbose=bool(self.verbose)) as prepared:
            sums = prepared.run()
        self._raise_loss_failure(prepared, plan)
        objectives = _mean_objectives(sums, self._per_output_problems(state))
        objective = float(objectives.sum())
        try:
            self._check_finite(state, objective, 1, full=False, norm_before=norm_before)
            if attempt:
                _check_blowup(objectives, 1, _blowup_level(Y, rows, state))
        except _Diverged as exc:
            if attempt:
                raise _RetryCapped(exc) from None
            raise
        return [objective], hyper

    # ------------------------------------------------------------ predicting

    def _decision(self, X):
        if "_state" not in self.__dict__:
            check_is_fitted(self)
        Xf = self._fast_X(X)
        if Xf is None:
            Xf = self._validate_X(X, reset=False)
        state = self._state
        averaged = self._published_average()
        coef = self.__dict__.get("_coef_out")
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

    # ------------------------------------------------------- fitted weights
    #
    # coef_ and intercept_ are scikit-learn's: arrays the user may write in
    # place or replace, which predictions and the next training call see.
    # coef_ is formed from the training state only when read (a training
    # call never pays O(n_features) to publish it); the array handed out, or
    # the one assigned, is then remembered (``_coef_out``) and is the model:
    # predictions multiply by it, and the next training call compares it
    # with the state and adopts what was written (O(n_features), paid only
    # when coef_ was read or assigned since the last call). intercept_ is a
    # plain attribute; what was published in it is remembered as a tuple
    # (``_intercept_out``), so a write costs one comparison of n_outputs
    # values to detect.

    @property
    def coef_(self):
        """Weights of the fitted model: writable, and assignable, as
        scikit-learn's (predictions and the next training call see writes)."""
        published = self.__dict__.get("_coef_out")
        if published is not None:
            return published
        state = self.__dict__.get("_state")
        if state is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute 'coef_'")
        coef, _ = self._public_weights(state, averaged=self._published_average())
        # (a new array: the public weights are computed, never a view of the state)
        coef = self._shape_coef(coef).astype(state.coef.dtype, copy=False)
        self.__dict__["_coef_out"] = coef
        return coef

    @coef_.setter
    def coef_(self, value):
        self.__dict__["_coef_out"] = value
        self.__dict__["_coef_view"] = None

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
        self.coef_ = sparse
        if unwritten:
            # The model stays the state's (predictions exactly as before)
            # while the sparse matrix holds what it held: its arrays are kept
            # to see a write, at the cost of its non-zeros.
            self.__dict__["_coef_view"] = tuple(
                a.copy() for a in (sparse.data, sparse.indices, sparse.indptr))
        return self

    def _sparse_view(self, coef):
        """Whether ``coef`` is the sparse matrix :meth:`sparsify` made from the
        state's weights, not written since (costs its non-zeros)."""
        view = self.__dict__.get("_coef_view")
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
        if sp.issparse(self.__dict__.get("_coef_out")):
            self.coef_ = self.coef_.toarray()
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
        if not (isinstance(value, np.ndarray) and value.dtype in _FLOATS):
            value = _real_array(value, name)
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
        out = self.__dict__.get("_coef_out")
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
        published = self.__dict__.get("_intercept_out")
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

    def _adopt_writes(self, state):
        """Make what the user left in ``coef_`` and ``intercept_`` the model
        that this ``partial_fit`` call trains on.

        The writes go where the published weights come from: the averaged
        weights once averaging has begun (the running average goes on from
        them, the weights as they were: scikit-learn's behaviour for writes
        in place), otherwise the weights. New arrays replace the state's, so
        an :class:`_engine.Undo` made before puts the old ones back. Costs
        O(n_outputs) unless ``coef_`` was read or assigned since the last
        training call.
        """
        written_coef, written_intercept = self._written_coef(state), self._written_intercept(state)
        if written_coef is None and written_intercept is None:
            return
        averaged, base = self._published_average(), (None, None)
        if averaged and not (self._average() and state.averaging()):
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

    def _current_weights(self, state):
        """``(coef, intercept)`` of the published model with the user's
        writes, float64 in the engine's layout (what a warm start starts
        from)."""
        averaged = self._published_average()
        coef, intercept = self._public_weights(state, averaged=averaged)
        written = self._with_writes(self._written_coef(state), "coef_")
        coef = coef if written is None else written
        written = self._with_writes(self._written_intercept(state), "intercept_")
        return coef, intercept if written is None else written

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_plan_cache", None)  # compiled objects; rebuilt on demand
        state.pop("_hyper_cache", None)
        state.pop("_checked_params", None)  # a token; the next call checks again
        state.pop("_cap_warned", None)
        out = state.get("_coef_out", False)
        if out is None or (isinstance(out, np.ndarray) and self._unwritten()):
            state.pop("_coef_out")  # read, not written: formed again when read
        if state.get("_coef_view", False) is None:
            state.pop("_coef_view")
        return state

    def _unwritten(self):
        """Whether ``coef_`` holds the published weights, read and not written."""
        try:
            written = self._written_coef(self._state)
        except (ValueError, AttributeError):
            return False
        return written is not None and not written[2].any()

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
        intercept = state.avg_intercept if averaged else state.intercept
        intercept_ = self._shape_intercept(intercept).astype(state.coef.dtype)
        if incremental and "loss_curve_" in self.__dict__:
            loss_curve = self.loss_curve_
            loss_curve.extend(curve)
        else:
            loss_curve = list(curve)
        published = {
            "_state": state,
            "_averaged_published": averaged,
            "n_iter_": n_iter,
            "t_": state.t,
            "intercept_": intercept_,
            # what was published, to see writes; coef_ is formed when read
            "_intercept_out": tuple(intercept_.tolist()),
            "_coef_out": None,
            "_coef_view": None,
            "loss_curve_": loss_curve,
        }
        if val_scores:
            published["validation_scores_"] = list(val_scores)
            published["best_score_"] = float(max(val_scores))
        self.__dict__.update(published)

    def _init_arrays(self, n_outputs, n_features, coef_init, intercept_init):
        """Check ``coef_init`` / ``intercept_init``; fall back to warm start."""
        if self.warm_start and hasattr(self, "_state"):
            if self._state.coef.shape == (n_outputs, n_features):
                # As scikit-learn: warm values (the published model, with what
                # the user wrote to coef_ and intercept_) fill in only what is
                # not given.
                warm_coef, warm_intercept = self._current_weights(self._state)
                coef_init = warm_coef if coef_init is None else coef_init
                intercept_init = warm_intercept if intercept_init is None else intercept_init
        if coef_init is not None:
            coef_init = _real_array(coef_init, "coef_init")
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
            intercept_init = _real_array(intercept_init, "intercept_init").reshape(-1)
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
            if init is not None and not np.isfinite(_sum_of_squares(init)):
                raise ValueError(
                    f"{name} has values too large to train from (largest magnitude "
                    f"{np.abs(init).max():.3g}): their squares overflow float64."
                )
        return coef_init, intercept_init


def _cap_at(hyper, t):
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


def _cap_holds_decay(hyper, t, t_end):
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
    schedule = int(hyper[_kernels.H_SCHEDULE])
    if schedule not in (OPTIMAL, INVSCALING) or not hyper[_kernels.H_CURV_MAX] > 0.0:
        return False  # no decay, or no cap (see skgd._kernels.minibatch_step)
    asked, cap, _, _ = _cap_at(hyper, t)
    m = hyper[_kernels.H_BATCH_SIZE]
    if not cap < asked / m * (1.0 - 1e-9):
        return False
    middle = 0.5 * (m - 1)
    if schedule == OPTIMAL:  # 1 / (alpha (t0 + t + middle - 1)) <= cap
        catch_up = 1.0 / (hyper[_kernels.H_ALPHA] * cap) - hyper[_kernels.H_OPTIMAL_INIT] + 1.0
    else:  # eta0 / (t + middle) ** power_t <= cap
        power_t = hyper[_kernels.H_POWER_T]
        if power_t <= 0.0:
            return False
        catch_up = (hyper[_kernels.H_ETA0] / cap) ** (1.0 / power_t)
    return catch_up - middle <= t_end


def _blowup_level(Y, rows, state):
    """The mean objective above which an uncapped attempt has diverged:
    ``_BLOWUP`` times ``1 + mean(y^2)`` over the rows (a regression's
    targets; classes are coded +-1). Costs a pass over a regressor's
    targets, only for such an attempt."""
    if state.outputs != "regression":
        return _BLOWUP * 2.0
    y = Y if rows.size == Y.shape[0] else Y[rows]
    return _BLOWUP * (1.0 + float(_sum_of_squares(y)) / max(y.size, 1))


def _check_blowup(objectives, epoch, blowup):
    """Raise :class:`_Diverged` when a problem's mean objective over the
    epoch exceeds ``blowup`` (None: no limit)."""
    if blowup is None:
        return
    peak = float(objectives.max())
    if peak > blowup:
        raise _Diverged(epoch, f"the mean loss reached {peak:.3g}")


def _snapshot_scores(X, snap, averaged):
    """Scores of one output from its :meth:`_engine.EngineState.snapshot_output`."""
    if averaged and "avg_coef" in snap:
        return safe_sparse_dot(X, snap["avg_coef"]) + snap["avg_intercept"]
    return safe_sparse_dot(X, snap["coef"]) + snap["intercept"]


class _BestEpoch:
    """The epoch of an early-stopping fit whose model scored best on the
    validation set, and the training state it left.

    Of equal scores the later epoch is kept: its weights took smaller steps
    (the schedules decay) from more data. On small validation sets ties are
    common, and keeping the earlier one lost 0.4-1.6 points of mean test
    accuracy (iris, digits, wine; hinge and log loss; 20 seeds). Keeping
    costs a copy of the state at each epoch that scores at least as well as
    the best so far.
    """

    def __init__(self):
        self.score = -np.inf
        self.epoch = 0
        self.state = None
        self.frozen = {}

    def see(self, epoch, score, state, frozen):
        """Record epoch ``epoch``'s validation ``score`` of the model that
        ``state`` and the snapshots of the stopped one-vs-rest classes
        (``frozen``) make."""
        if score >= self.score:
            self.score, self.epoch = score, epoch
            self.state = state.copy()
            self.frozen = dict(frozen)

    def put_back(self, state):
        """Make ``state`` (in place: callers hold it) the model of the best
        epoch."""
        state.restore(self.state)
        if self.frozen:
            state.restore_outputs(self.frozen)


def _largest_weights(sample_weight, Y, out_weight):
    """Each row's largest weight over the outputs (sample weight times output
    weight, see ``skgd._kernels.output_weight``): what the step caps must
    allow for."""
    if out_weight is None:
        return sample_weight
    per_output = np.where(Y > 0, out_weight[:, 1], out_weight[:, 0])
    return sample_weight * per_output.max(axis=1)


def _mean_objectives(sums, per_output):
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


def _real_array(value, name):
    """``value`` as a float64 array; complex numbers, dates and non-numbers
    are refused (not silently truncated or reinterpreted)."""
    arr = np.asarray(value)
    if np.iscomplexobj(arr) or arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got an array of dtype {arr.dtype}.")
    return arr.astype(np.float64)


_Plan = namedtuple("_Plan", "loss spec params rule optimal_init")
