"""Loss functions: the public contract and the built-in losses.

A loss is a small object whose class carries two numba-compiled functions of
the raw score ``p`` and the target ``y``:

``loss(p, y, *params) -> float``
    The value of the loss.
``dloss(p, y, *params) -> float``
    Its derivative with respect to ``p``.

``params`` are the values of the constructor arguments, in the order the
constructor lists them (see :meth:`Loss.params`), so a parametrised loss such
as :class:`Huber` works with ``get_params``, ``clone`` and ``GridSearchCV``
(``loss__epsilon``). Every built-in loss below is written through this same
contract; the engine has no private fast path.

For classification the target passed to the loss is ``+1`` or ``-1`` (one
output per class for one-vs-rest); for regression it is the real target.

**Multiclass losses** (``multi_class="multinomial"``) subclass
:class:`MulticlassLoss` and see the whole score vector ``p`` (one score per
class, a float64 array) and the class index ``y`` (an int):

``loss(p, y, *params) -> float``
    The value of the loss.
``dloss(p, y, out, *params) -> None``
    Writes the gradient with respect to ``p`` into ``out`` (same length).

The engine wraps both in compiled C callbacks, so they run inside the
compiled loop like the built-in :class:`SoftmaxLoss` and
:class:`MulticlassHinge`, which use this same contract.

Examples
--------
>>> import numba
>>> from skgd.losses import Loss
>>> @numba.njit
... def _value(p, y):
...     return 0.5 * (p - y) ** 2
>>> @numba.njit
... def _deriv(p, y):
...     return p - y
>>> class HalfSquared(Loss):
...     loss = staticmethod(_value)
...     dloss = staticmethod(_deriv)
>>> HalfSquared().params()
()
"""

import functools
import inspect
import math
import numbers
import threading
import warnings
from contextlib import contextmanager

import numba
import numpy as np
from numba import types
from sklearn.base import BaseEstimator

from . import _numba_cache

# Before any of skgd's functions is compiled: a damaged cache file of one of
# them is recompiled instead of failing every later call.
_numba_cache.install()

__all__ = [
    "Loss",
    "Hinge",
    "SquaredHinge",
    "LogLoss",
    "ModifiedHuber",
    "SquaredError",
    "Huber",
    "EpsilonInsensitive",
    "SquaredEpsilonInsensitive",
    "MulticlassLoss",
    "SoftmaxLoss",
    "MulticlassHinge",
    "CLASSIFICATION_LOSSES",
    "REGRESSION_LOSSES",
    "get_loss",
]

_jit = numba.njit(cache=True, nogil=True)


class Loss(BaseEstimator):
    """Base class of every loss.

    Subclasses set the class attributes ``loss`` and ``dloss`` to
    ``staticmethod(f)`` where ``f`` is a ``numba.njit`` function of
    ``(p, y, *params)``. Constructor arguments become ``params``.
    """

    loss = None
    dloss = None
    #: Bound on ``d^2 loss / dp^2``, or None (the default) if unknown. With
    #: it the engine caps the steps at ``1 / (curvature * L(m))`` (``L(m)``
    #: the smoothness of a minibatch of ``m`` rows, for the weights and the
    #: intercepts apart, see skgd._smoothness); without it there is no cap.
    curvature = None
    #: True: the caps never take a step below one per-sample step, so they
    #: only limit how far a minibatch step scales up and ``batch_size=1``
    #: keeps scikit-learn's schedule exactly; the weights and the intercepts
    #: are capped by their own blocks' smoothness. Right for losses whose
    #: derivative is bounded (log, Huber, hinge): they cannot blow up. False
    #: (the default): one hard cap from the joint smoothness. Needed for
    #: squared-type losses, whose weights grow geometrically above about
    #: twice the cap.
    per_sample_floor = False

    #: Smallest allowed value of a parameter, by name (e.g. ``epsilon >= 0``).
    _minimums = {}

    def check_params(self):
        """Raise a ValueError naming a parameter that is not a finite real
        number, or below its minimum."""
        for name in _init_arg_names(type(self)):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                    or not math.isfinite(value)):
                raise ValueError(
                    f"{type(self).__name__}({name}={value!r}): {name} must be a finite "
                    "real number."
                )
            low = self._minimums.get(name)
            if low is not None and value < low:
                raise ValueError(
                    f"{type(self).__name__}({name}={value!r}): {name} must be >= {low}."
                )

    def params(self):
        """The extra arguments passed to ``loss`` and ``dloss``.

        Returns
        -------
        params : tuple of float
            The constructor arguments in the order of the constructor's
            signature.
        """
        return tuple(float(getattr(self, name)) for name in _init_arg_names(type(self)))

    def compiled(self):
        """Compiled function pointers the engine calls.

        Returns
        -------
        loss, dloss : numba cfunc objects
            ``float64(float64, float64, *float64)`` first-class functions.
            They are built once per class and process; passing them (rather
            than the jitted functions) lets the engine's on-disk cache serve
            every loss, built-in or not.
        """
        try:
            return _compile_pair(type(self), len(self.params()))
        except numba.core.errors.TypingError as exc:
            self._probe()  # raises what the user's functions raise, if they do
            raise TypeError(
                f"{type(self).__name__}: its loss or dloss could not be compiled as "
                f"functions of (p, y, *params) returning a float: {exc}"
            ) from exc

    def _probe(self):
        """Call ``loss`` and ``dloss`` once from Python, so that a function that
        always raises (numba then cannot type it) raises its own exception."""
        if isinstance(self, MulticlassLoss):  # a row of two classes, class 0
            calls = ((type(self).loss, (np.zeros(2), 0)),
                     (type(self).dloss, (np.zeros(2), 0, np.zeros(2))))
        else:
            calls = ((type(self).loss, (0.0, 1.0)), (type(self).dloss, (0.0, 1.0)))
        for fn, args in calls:
            try:
                fn(*args, *self.params())
            except Exception as exc:
                exc.add_note(f"(raised by {self!r} when called with {args!r})")
                raise


@functools.cache
def _init_arg_names(cls):
    return tuple(
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    )


_COMPILED = {}
_WARNINGS_LOCK = threading.Lock()


@contextmanager
def quiet_experimental():
    """Silence numba's warning that C function pointers (a user's loss) are
    "experimental". ``warnings.catch_warnings`` swaps process-wide state:
    two threads inside it at once (two fits of a threaded grid search) can
    leave the filter behind for good, so skgd's blocks take turns."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", numba.core.errors.NumbaExperimentalFeatureWarning)
        yield


def _compile_pair(cls, n_params):
    key = (cls, n_params)
    if key not in _COMPILED:
        if cls.loss is None or cls.dloss is None:
            raise TypeError(
                f"{cls.__name__} must define `loss` and `dloss` as static methods "
                "wrapping numba.njit functions of (p, y, *params)."
            )
        _COMPILED[key] = _guarded_pair(cls, n_params, issubclass(cls, MulticlassLoss))
    return _COMPILED[key]


def _jitted(fn):
    return fn if hasattr(fn, "py_func") else numba.njit(fn)


def _guarded_pair(cls, n_params, multiclass):
    """C callbacks around a user's loss, which never let an exception out.

    A C callback cannot raise: numba would print "Exception ignored" and
    go on with garbage. So each callback catches what the loss raises and
    returns NaN (the derivative fills ``out`` with NaN); the engine records
    where the first non-finite value came from and calls the loss again
    there from Python, so the user sees their own exception. A multiclass
    loss's score vector travels as a pointer and a length, viewed as an
    array again inside. The wrappers close over the user's functions, so
    numba compiles them in each process (a fraction of a second); the
    engine itself stays cached.
    """
    names = ", ".join(f"a{i}" for i in range(n_params))
    tail = f", {names}" if names else ""
    scope = {"carray": numba.carray, "nan": math.nan,
             "value_fn": _jitted(cls.loss), "deriv_fn": _jitted(cls.dloss)}
    extra = [types.float64] * n_params
    if multiclass:
        f64p = types.CPointer(types.float64)
        source = (
            f"def value(p, k, y{tail}):\n"
            f"    try:\n"
            f"        return value_fn(carray(p, (k,)), y{tail})\n"
            f"    except Exception:\n"
            f"        return nan\n"
            f"def deriv(p, k, y, out{tail}):\n"
            f"    try:\n"
            f"        deriv_fn(carray(p, (k,)), y, carray(out, (k,)){tail})\n"
            f"    except Exception:\n"
            f"        carray(out, (k,))[:] = nan\n"
        )
        signatures = (types.float64(f64p, types.int64, types.int64, *extra),
                      types.void(f64p, types.int64, types.int64, f64p, *extra))
    else:
        source = "".join(
            f"def {name}(p, y{tail}):\n"
            f"    try:\n"
            f"        return {name}_fn(p, y{tail})\n"
            f"    except Exception:\n"
            f"        return nan\n"
            for name in ("value", "deriv")
        )
        signatures = (types.float64(*([types.float64] * (2 + n_params))),) * 2
    exec(source, scope)  # noqa: S102 - a fixed template; only the arity varies
    with quiet_experimental():
        return tuple(numba.cfunc(sig)(scope[name])
                     for sig, name in zip(signatures, ("value", "deriv"), strict=True))


# ---------------------------------------------------------------- classification


@_jit
def _hinge(p, y, threshold):
    z = p * y
    return threshold - z if z <= threshold else 0.0


@_jit
def _dhinge(p, y, threshold):
    return -y if p * y <= threshold else 0.0


class Hinge(Loss):
    """Hinge loss ``max(0, threshold - y p)``; ``threshold=0`` is the perceptron.

    Parameters
    ----------
    threshold : float, default=1.0
        Margin below which the loss is positive.
    """

    loss = staticmethod(_hinge)
    dloss = staticmethod(_dhinge)
    # The kink has no bounded second derivative; the step cap uses the
    # curvature of the hinge's quadratic smoothing (modified Huber, 2). With
    # the per-sample floor this only limits how far minibatch steps scale
    # up: without it, the first steps of a large batch on sparse text throw
    # the intercept to about -2000.
    curvature = 2.0
    per_sample_floor = True

    def __init__(self, threshold=1.0):
        self.threshold = threshold


@_jit
def _squared_hinge(p, y, threshold):
    z = threshold - p * y
    return z * z if z > 0.0 else 0.0


@_jit
def _dsquared_hinge(p, y, threshold):
    z = threshold - p * y
    return -2.0 * y * z if z > 0.0 else 0.0


class SquaredHinge(Loss):
    """Squared hinge loss ``max(0, threshold - y p) ** 2``.

    Parameters
    ----------
    threshold : float, default=1.0
        Margin below which the loss is positive.
    """

    loss = staticmethod(_squared_hinge)
    dloss = staticmethod(_dsquared_hinge)
    curvature = 2.0

    def __init__(self, threshold=1.0):
        self.threshold = threshold


@_jit
def _log(p, y):
    # log(1 + exp(-z)), written to stay finite for any margin z.
    z = p * y
    if z > 18.0:
        return math.exp(-z)
    if z < -18.0:
        return -z
    return math.log1p(math.exp(-z))


@_jit
def _dlog(p, y):
    z = p * y
    if z > 18.0:
        return -y * math.exp(-z)
    if z < -18.0:
        return -y
    return -y / (math.exp(z) + 1.0)


class LogLoss(Loss):
    """Logistic loss ``log(1 + exp(-y p))``; gives probabilities."""

    loss = staticmethod(_log)
    dloss = staticmethod(_dlog)
    curvature = 0.25
    per_sample_floor = True


@_jit
def _modified_huber(p, y):
    z = p * y
    if z >= 1.0:
        return 0.0
    if z >= -1.0:
        return (1.0 - z) * (1.0 - z)
    return -4.0 * z


@_jit
def _dmodified_huber(p, y):
    z = p * y
    if z >= 1.0:
        return 0.0
    if z >= -1.0:
        return -2.0 * (1.0 - z) * y
    return -4.0 * y


class ModifiedHuber(Loss):
    """Modified Huber loss (Zhang 2004): smooth hinge, quadratic near the margin."""

    loss = staticmethod(_modified_huber)
    dloss = staticmethod(_dmodified_huber)
    curvature = 2.0
    # A hard cap although the derivative is bounded: uncapped per-sample
    # steps oscillate across the quadratic zone (scikit-learn's
    # SGDClassifier(loss="modified_huber") fails check_classifiers_train).
    per_sample_floor = False


# -------------------------------------------------------------------- regression


@_jit
def _squared_error(p, y):
    r = p - y
    return 0.5 * r * r


@_jit
def _dsquared_error(p, y):
    return p - y


class SquaredError(Loss):
    """Half squared error ``(p - y) ** 2 / 2`` (ordinary least squares)."""

    loss = staticmethod(_squared_error)
    dloss = staticmethod(_dsquared_error)
    curvature = 1.0


@_jit
def _huber(p, y, epsilon):
    r = p - y
    a = abs(r)
    if a <= epsilon:
        return 0.5 * r * r
    return epsilon * (a - 0.5 * epsilon)


@_jit
def _dhuber(p, y, epsilon):
    r = p - y
    if abs(r) <= epsilon:
        return r
    return epsilon if r > 0.0 else -epsilon


class Huber(Loss):
    """Huber loss: squared within ``epsilon`` of the target, linear beyond.

    Parameters
    ----------
    epsilon : float, default=0.1
        Where the loss turns from quadratic to linear.
    """

    loss = staticmethod(_huber)
    dloss = staticmethod(_dhuber)
    curvature = 1.0
    per_sample_floor = True

    _minimums = {"epsilon": 0.0}

    def __init__(self, epsilon=0.1):
        self.epsilon = epsilon


@_jit
def _epsilon_insensitive(p, y, epsilon):
    r = abs(y - p) - epsilon
    return r if r > 0.0 else 0.0


@_jit
def _depsilon_insensitive(p, y, epsilon):
    if y - p > epsilon:
        return -1.0
    if p - y > epsilon:
        return 1.0
    return 0.0


class EpsilonInsensitive(Loss):
    """Epsilon-insensitive loss ``max(0, |y - p| - epsilon)`` (linear SVR).

    Parameters
    ----------
    epsilon : float, default=0.1
        Half-width of the zero-loss tube.
    """

    loss = staticmethod(_epsilon_insensitive)
    dloss = staticmethod(_depsilon_insensitive)

    _minimums = {"epsilon": 0.0}

    def __init__(self, epsilon=0.1):
        self.epsilon = epsilon


@_jit
def _squared_epsilon_insensitive(p, y, epsilon):
    r = abs(y - p) - epsilon
    return r * r if r > 0.0 else 0.0


@_jit
def _dsquared_epsilon_insensitive(p, y, epsilon):
    z = y - p
    if z > epsilon:
        return -2.0 * (z - epsilon)
    if z < -epsilon:
        return 2.0 * (-z - epsilon)
    return 0.0


class SquaredEpsilonInsensitive(Loss):
    """Squared epsilon-insensitive loss ``max(0, |y - p| - epsilon) ** 2``.

    Parameters
    ----------
    epsilon : float, default=0.1
        Half-width of the zero-loss tube.
    """

    loss = staticmethod(_squared_epsilon_insensitive)
    dloss = staticmethod(_dsquared_epsilon_insensitive)
    curvature = 2.0

    _minimums = {"epsilon": 0.0}

    def __init__(self, epsilon=0.1):
        self.epsilon = epsilon


# ---------------------------------------------------------------- multiclass


class MulticlassLoss(Loss):
    """Base class of losses over the whole score vector (multinomial models).

    Subclasses set ``loss`` and ``dloss`` to ``staticmethod`` s of
    ``numba.njit`` functions ``loss(p, y, *params) -> float`` and
    ``dloss(p, y, out, *params) -> None`` (see the module docstring).
    """


# Both softmax functions keep their own fastmath flags (none), not their
# caller's: see _dsoftmax_loss.
@numba.njit(cache=True, nogil=True, fastmath=False)
def _softmax_loss(p, y):
    # log-sum-exp shifted by the largest score: finite for any scores
    top = p.max()
    total = 0.0
    for k in range(p.shape[0]):
        total += math.exp(p[k] - top)
    return top + math.log(total) - p[y]


# Its own fastmath flags (none), not its caller's (issue 26). A numba
# function that sets no ``fastmath`` inherits its caller's, so inside the
# compiled passes (``reassoc``) LLVM vectorised the sum of the first loop.
# That loop also stores into ``out``, so the vector code runs behind a
# run-time test of the two addresses (``out`` starting less than 256 bytes
# after ``p`` means the scalar loop): the vector loop sums in lanes, the
# scalar one in order, and which ran depended on where malloc had put the
# pass's scratch rows of scores and derivatives. With 4 or more classes
# the gradient's last bit, and after the early large steps the whole
# model, changed from one fit to the next in the same process. Without
# ``reassoc`` the sum is always in order (what the scalar loop did), and
# the function compiles alike whoever calls it first (so does the loss
# value's, whose own sum otherwise took the flags of whichever caller
# compiled it first: the objective's last bit could follow the cache).
@numba.njit(cache=True, nogil=True, fastmath=False)
def _dsoftmax_loss(p, y, out):
    top = p.max()
    total = 0.0
    for k in range(p.shape[0]):
        out[k] = math.exp(p[k] - top)
        total += out[k]
    for k in range(p.shape[0]):
        out[k] /= total
    out[y] -= 1.0


class SoftmaxLoss(MulticlassLoss):
    """Softmax cross-entropy ``log(sum_k exp(p_k)) - p_y`` (multinomial logistic).

    Computed with a shifted log-sum-exp, so it stays finite for any scores.
    Its Hessian ``diag(s) - s s^T`` has eigenvalues at most 1/2.
    """

    loss = staticmethod(_softmax_loss)
    dloss = staticmethod(_dsoftmax_loss)
    curvature = 0.5
    per_sample_floor = True


@_jit
def _multiclass_hinge(p, y):
    total = 0.0
    for k in range(p.shape[0]):
        if k != y:
            margin = p[k] - p[y] + 1.0
            if margin > 0.0:
                total += margin
    return total


@_jit
def _dmulticlass_hinge(p, y, out):
    violated = 0.0
    for k in range(p.shape[0]):
        out[k] = 0.0
        if k != y and p[k] - p[y] + 1.0 > 0.0:
            out[k] = 1.0
            violated += 1.0
    out[y] = -violated


class MulticlassHinge(MulticlassLoss):
    """Multiclass SVM loss of Weston & Watkins (1999):
    ``sum_{k != y} max(0, p_k - p_y + 1)``."""

    loss = staticmethod(_multiclass_hinge)
    dloss = staticmethod(_dmulticlass_hinge)
    # Not a bound: the smoothed Weston-Watkins loss has a Hessian of norm
    # up to 2 * n_classes. With the per-sample floor the cap only limits how
    # far minibatch steps scale up, and 2 (the binary hinge's value) was
    # measured best: on digits at batch 512, 10-seed means, uncapped 0.894,
    # curvature 2 0.922, 4 0.914, 20 0.911 (batch 1: 0.928).
    curvature = 2.0
    per_sample_floor = True


MULTINOMIAL_LOSSES = {
    "log_loss": lambda epsilon: SoftmaxLoss(),
    "hinge": lambda epsilon: MulticlassHinge(),
}


# ------------------------------------------------------------------ by name

REGRESSION_LOSSES = {
    "squared_error": lambda epsilon: SquaredError(),
    "huber": lambda epsilon: Huber(epsilon),
    "epsilon_insensitive": lambda epsilon: EpsilonInsensitive(epsilon),
    "squared_epsilon_insensitive": lambda epsilon: SquaredEpsilonInsensitive(epsilon),
}

CLASSIFICATION_LOSSES = {
    "hinge": lambda epsilon: Hinge(1.0),
    "log_loss": lambda epsilon: LogLoss(),
    "modified_huber": lambda epsilon: ModifiedHuber(),
    "squared_hinge": lambda epsilon: SquaredHinge(1.0),
    "perceptron": lambda epsilon: Hinge(0.0),
    **REGRESSION_LOSSES,
}


def get_loss(loss, epsilon=0.1, allowed=CLASSIFICATION_LOSSES):
    """Turn a loss name (or a :class:`Loss` instance) into a :class:`Loss`.

    Parameters
    ----------
    loss : str or Loss
        A name from ``allowed`` or a ``Loss`` instance (returned as is).
    epsilon : float, default=0.1
        Used by the names ``huber``, ``epsilon_insensitive`` and
        ``squared_epsilon_insensitive``, as in scikit-learn's SGD.
    allowed : dict, default=CLASSIFICATION_LOSSES
        The names accepted.

    Returns
    -------
    loss : Loss
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in allowed:
        return allowed[loss](epsilon)
    raise ValueError(
        f"The 'loss' parameter must be a Loss instance or one of "
        f"{sorted(allowed)}; got {loss!r}."
    )
