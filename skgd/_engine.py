"""Python side of the engine: its state, its hyper-parameters, one pass.

The estimators never touch the compiled kernel directly; they hold an
:class:`EngineState`, build a :class:`Hyper` once per ``fit`` /
``partial_fit`` call and call :func:`run_pass` once per epoch or chunk.
"""

import copy
from collections import namedtuple

import numpy as np
import scipy.sparse as sp

from . import _kernels as K

Hyper = namedtuple(
    "Hyper",
    [
        "schedule",  # int, a code from skgd.schedules
        "alpha",  # float, used by the 'optimal' schedule
        "eta0",  # float, current base rate (lowered by 'adaptive')
        "power_t",  # float
        "optimal_init",  # float, t0 of the 'optimal' schedule
        "l2",  # float, L2 strength alpha * (1 - l1_ratio), 0 if none
        "l1",  # float, L1 strength alpha * l1_ratio, 0 if none
        "fit_intercept",  # bool
        "batch_size",  # int
        "clip_norm",  # float, 0 = off
        "clip_value",  # float, 0 = off
        "average_start",  # float, sample count where averaging starts, 0 = off
        "scale_min",  # float, when to fold the lazy L2 scale into coef
        "curv_full",  # float, beta * lam: step cap 1 / (curv_full + curv_max / m)
        "curv_max",  # float, beta * l_max; 0 = no cap
    ],
)


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
    smoothness,
):
    """Build the compiled kernel's hyper-parameters (fixed Python types).

    ``curvature`` is the loss's bound on its second derivative (None: no
    step cap) and ``smoothness`` the data's ``(lam, l_max)``.
    """
    if penalty == "l2":
        l2, l1 = alpha, 0.0
    elif penalty == "l1":
        l2, l1 = 0.0, alpha
    elif penalty == "elasticnet":
        l2, l1 = alpha * (1.0 - l1_ratio), alpha * l1_ratio
    else:
        l2, l1 = 0.0, 0.0
    average_start = float(average)  # True -> 1 (from the first sample)
    if average_start > 0:
        # The lazy average cancels terms of size 1 / scale_min; keep that
        # within the precision of the weights' dtype.
        scale_min = 1e-6 if dtype == np.float64 else 1e-3
    else:
        scale_min = 1e-9
    return Hyper(
        int(schedule),
        float(alpha),
        float(eta0),
        float(power_t),
        float(optimal_init),
        float(l2),
        float(l1),
        bool(fit_intercept),
        int(batch_size),
        float(clip_norm or 0.0),
        float(clip_value or 0.0),
        average_start,
        float(scale_min),
        float(curvature or 0.0) * smoothness[0],
        float(curvature or 0.0) * smoothness[1],
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
    clock : ndarray of shape (5,), float64
        Scalar state; slots named in ``skgd._kernels``.
    eta : float
        Current base learning rate (the ``adaptive`` schedule lowers it).
    """

    def __init__(self, n_outputs, n_features, dtype, *, average, l1, eta0,
                 coef_init=None, intercept_init=None):
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
        self.clock = np.zeros(K.N_CLOCK, dtype=np.float64)
        self.clock[K.T] = 1.0
        self.clock[K.SCALE] = 1.0
        self.eta = float(eta0)
        self.rng = None  # shuffles partial_fit chunks; set on first use
        self.smoothness = (0.0, 0.0)  # the data's (lam, l_max), running max

    def copy(self):
        """A deep copy (training runs on a copy so a failure changes nothing)."""
        return copy.deepcopy(self)

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

    def see_data(self, lam, l_max):
        """Fold a chunk's smoothness into the running maximum (the cap only tightens)."""
        self.smoothness = (max(self.smoothness[0], lam), max(self.smoothness[1], l_max))

    def is_finite(self):
        return bool(
            np.isfinite(self.clock).all()
            and np.isfinite(self.coef).all()
            and np.isfinite(self.intercept).all()
        )


def as_dataset(X):
    """The kernel's dataset tuple for a validated dense or CSR matrix."""
    if sp.issparse(X):
        return (X.data, X.indices, X.indptr)
    return (X,)


def _work_buffers(state, hyper):
    n_out, n_features = state.coef.shape
    clipping = hyper.clip_norm > 0 or hyper.clip_value > 0
    grad = np.zeros((n_out, n_features) if clipping else (0, 0), dtype=np.float64)
    grad_b = np.zeros(n_out, dtype=np.float64)
    derivs = np.zeros((hyper.batch_size, n_out), dtype=np.float64)
    mark = np.zeros(n_features, dtype=np.bool_)
    touched = np.zeros(n_features, dtype=np.int64)
    return grad, grad_b, derivs, mark, touched


def run_pass(state, X, Y, sample_weight, order, hyper, loss):
    """One compiled pass over ``order``; returns the summed weighted loss."""
    loss_fn, dloss_fn = loss.compiled()
    return K.sgd_pass(
        as_dataset(X),
        Y,
        sample_weight,
        order,
        state.coef,
        state.intercept,
        state.avg_coef,
        state.avg_intercept,
        state.l1_applied,
        state.clock,
        hyper,
        loss_fn,
        dloss_fn,
        loss.params(),
        _work_buffers(state, hyper),
    )


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
