"""Python side of the engine: its state, its hyper-parameters, one pass.

The estimators never touch the compiled kernel directly; they hold an
:class:`EngineState`, build a :class:`Hyper` once per ``fit`` /
``partial_fit`` call and call :func:`run_pass` once per epoch or chunk.
"""

import copy
from collections import namedtuple

import numba
import numpy as np
import scipy.sparse as sp

from . import _kernels as K
from ._smoothness import NO_DATA

# Named on the Python side for readability; the kernel gets it as an array.
Hyper = namedtuple("Hyper", K.HYPER_FIELDS)


def make_hyper(
    *,
    schedule,
    alpha,
    eta0,
    power_t,
    optimal_init,
    penalty,
    l1_ratio,
    fit_intercept,
    batch_size,
    clip_norm,
    clip_value,
    average,
    dtype,
    curvature,
    per_sample_floor,
    smoothness,
    momentum=0.0,
    nesterov=False,
):
    """Build the compiled kernel's hyper-parameters (fixed Python types).

    ``curvature`` is the loss's bound on its second derivative (None: no
    step cap) and ``smoothness`` the data's ``Smoothness`` tuple. The caps
    (skgd._smoothness): with ``per_sample_floor`` the weights and the
    intercept are capped by their own block's smoothness, otherwise both by
    the bound on the joint one.
    """
    if penalty == "l2":
        l2, l1 = alpha, 0.0
    elif penalty == "l1":
        l2, l1 = 0.0, alpha
    elif penalty == "elasticnet":
        l2, l1 = alpha * (1.0 - l1_ratio), alpha * l1_ratio
    else:
        l2, l1 = 0.0, 0.0
    beta = curvature or 0.0
    lam_w, l_max_w, lam_b, l_max_b = smoothness
    if not per_sample_floor:
        lam_w, l_max_w = lam_b, l_max_b = lam_w + lam_b, l_max_w + l_max_b
    average_start = float(average)  # True -> 1 (from the first sample)
    if average_start > 0:
        # The lazy average cancels terms of size 1 / scale_min; keep that
        # within the precision of the weights' dtype.
        scale_min = 1e-6 if dtype == np.float64 else 1e-3
    else:
        scale_min = 1e-9
    return Hyper(
        schedule=schedule,
        alpha=alpha,
        eta0=eta0,
        power_t=power_t,
        optimal_init=optimal_init,
        l2=l2,
        l1=l1,
        fit_intercept=float(fit_intercept),
        batch_size=batch_size,
        clip_norm=clip_norm or 0.0,
        clip_value=clip_value or 0.0,
        average_start=average_start,
        scale_min=scale_min,
        curv_full=beta * lam_w,
        curv_max=beta * l_max_w,
        curv_b_full=beta * lam_b,
        curv_b_max=beta * l_max_b,
        cap_floor=float(bool(per_sample_floor)),
        momentum=momentum,
        nesterov=float(bool(nesterov)),
    )


class EngineState:
    """Everything training needs to continue exactly where it stopped.

    Attributes
    ----------
    coef : ndarray of shape (n_outputs, n_features), dtype of X
        Unscaled weights; the real weights are ``clock[SCALE] * coef``.
    intercept : ndarray of shape (n_outputs,), float64
    avg_coef, avg_intercept : ndarray, float64
        Lazy running sums for averaged SGD (empty when averaging is off).
    l1_applied : ndarray, float64
        L1 penalty already applied to each weight (empty without L1).
    velocity, velocity_b : ndarray, float64
        Momentum of the weights and intercepts (empty without momentum).
    clock : ndarray of shape (6,), float64
        Scalar state; slots named in ``skgd._kernels``.
    shuffle_seed : int
        Seed of the shuffles; each pass's order depends only on it and the
        pass number, so a resumed state shuffles as the original would.
    eta : float
        Current base learning rate (the ``adaptive`` schedule lowers it).
    """

    def __init__(self, n_outputs, n_features, dtype, *, average, l1, eta0, shuffle_seed,
                 momentum=False, coef_init=None, intercept_init=None):
        self.coef = np.zeros((n_outputs, n_features), dtype=dtype)
        if coef_init is not None:
            self.coef[...] = coef_init
        self.intercept = np.zeros(n_outputs, dtype=np.float64)
        if intercept_init is not None:
            self.intercept[...] = intercept_init
        shape = (n_outputs, n_features)
        self.avg_coef = np.zeros(shape if average else (0, 0), dtype=np.float64)
        self.avg_intercept = np.zeros(n_outputs if average else 0, dtype=np.float64)
        self.l1_applied = np.zeros(shape if l1 else (0, 0), dtype=np.float64)
        self.velocity = np.zeros(shape if momentum else (0, 0), dtype=np.float64)
        self.velocity_b = np.zeros(n_outputs if momentum else 0, dtype=np.float64)
        self.clock = np.zeros(K.N_CLOCK, dtype=np.float64)
        self.clock[K.T] = 1.0
        self.clock[K.SCALE] = 1.0
        self.eta = float(eta0)
        self.shuffle_seed = int(shuffle_seed)  # with clock[PASSES], seeds each shuffle
        # the data's Smoothness, running max, as a plain tuple (what skops trusts)
        self.smoothness = tuple(NO_DATA)
        self.seen_data = False  # lam_w is estimated from the first data seen

    def copy(self):
        """A deep copy (training runs on a copy so a failure changes nothing)."""
        new = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                setattr(new, name, value.copy())
        return new

    @property
    def t(self):
        """Samples seen + 1, as scikit-learn's ``t_``."""
        return float(self.clock[K.T])

    def weights(self):
        """The current (not averaged) weights and intercepts."""
        return self.coef * self.clock[K.SCALE], self.intercept.copy()

    def averaged_weights(self):
        """Averaged weights and intercepts, or None before averaging began."""
        n = self.clock[K.AVG_N]
        if self.avg_coef.size == 0 or n == 0:
            return None
        coef = (self.avg_coef + self.clock[K.AVG_B] * self.coef) / n
        return coef, self.avg_intercept.copy()

    def see_data(self, chunk):
        """Fold a chunk's ``Smoothness`` into the running maximum (the caps
        only tighten)."""
        self.smoothness = tuple(map(max, self.smoothness, chunk))

    def is_finite(self):
        """Whether every state array is finite: a finite coef with overflowed
        averaging sums would still publish non-finite averaged weights."""
        return all(
            np.isfinite(value).all()
            for value in vars(self).values()
            if isinstance(value, np.ndarray)
        )


def as_dataset(X):
    """The kernel's dataset tuple for a validated dense or CSR matrix."""
    if sp.issparse(X):
        return (X.data, X.indices, X.indptr)
    return (X,)


# Compiled entry points of sgd_pass by argument-type key. numba's dispatcher
# types every argument on every call (about 15 us here); a streaming
# partial_fit on 100 rows costs not much more than that in total. Only the
# arrays that come from the caller (the data, targets, weights, row order)
# and the loss vary in type between calls; the state arrays are the engine's
# own, always C-ordered, writable, of fixed dtypes. So this key determines
# the compiled specialization.
_ENTRY_POINTS = {}


def _type_key(arrays, coef, loss_fn, loss_params):
    layout = tuple((a.dtype.str, a.ndim, a.flags.c_contiguous, a.flags.writeable,
                    a.flags.aligned) for a in arrays)
    return layout, coef.dtype.str, id(loss_fn), len(loss_params)


def _call_kernel(args, key):
    entry = _ENTRY_POINTS.get(key)
    if entry is not None:
        return entry(*args)
    result = K.sgd_pass(*args)  # types the arguments and compiles if needed
    overload = K.sgd_pass.overloads.get(tuple(numba.typeof(a) for a in args))
    if overload is not None:
        _ENTRY_POINTS[key] = overload.entry_point
    return result


def run_pass(state, X, Y, sample_weight, rows, hyper, loss, shuffle):
    """One compiled pass over ``rows`` (shuffled if ``shuffle``); returns the
    summed weighted and unweighted losses (see ``sgd_pass``)."""
    loss_fn, dloss_fn = loss.compiled()
    data = as_dataset(X)
    params = loss.params()
    order = rows.copy() if shuffle else rows
    args = (
        data,
        Y,
        sample_weight,
        order,
        state.shuffle_seed if shuffle else -1,
        state.coef,
        state.intercept,
        state.avg_coef,
        state.avg_intercept,
        state.l1_applied,
        state.velocity,
        state.velocity_b,
        state.clock,
        np.asarray(hyper, dtype=np.float64),
        loss_fn,
        dloss_fn,
        params,
    )
    key = _type_key(data + (Y, sample_weight, order), state.coef, loss_fn, params)
    return _call_kernel(args, key)


def penalty_value(coef, alpha, penalty, l1_ratio):
    """The regulariser ``alpha * R(w)`` of scikit-learn's SGD objective."""
    if penalty is None:
        return 0.0
    sq = 0.5 * float(np.dot(coef.ravel(), coef.ravel()))
    ab = float(np.abs(coef).sum())
    if penalty == "l2":
        return alpha * sq
    if penalty == "l1":
        return alpha * ab
    return alpha * ((1.0 - l1_ratio) * sq + l1_ratio * ab)
