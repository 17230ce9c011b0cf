"""User-style losses defined in a module (so numba caches them), for tests."""

import numba
import numpy as np

from skgd.losses import Loss, MulticlassLoss


@numba.njit
def half_squared(p, y):
    return 0.5 * (p - y) ** 2


@numba.njit
def dhalf_squared(p, y):
    return p - y


class HalfSquared(Loss):
    """Identical to the built-in SquaredError, written as a user would."""

    loss = staticmethod(half_squared)
    dloss = staticmethod(dhalf_squared)
    curvature = 1.0


@numba.njit
def user_log(p, y):
    z = p * y
    if z > 18.0:
        return np.exp(-z)
    if z < -18.0:
        return -z
    return np.log1p(np.exp(-z))


@numba.njit
def duser_log(p, y):
    z = p * y
    if z > 18.0:
        return -y * np.exp(-z)
    if z < -18.0:
        return -y
    return -y / (np.exp(z) + 1.0)


class UserLog(Loss):
    """The logistic loss, written as a user would (same numbers as LogLoss)."""

    loss = staticmethod(user_log)
    dloss = staticmethod(duser_log)
    curvature = 0.25
    per_sample_floor = True


@numba.njit
def pinball(p, y, quantile):
    r = y - p
    return quantile * r if r >= 0.0 else (quantile - 1.0) * r


@numba.njit
def dpinball(p, y, quantile):
    return -quantile if y - p >= 0.0 else 1.0 - quantile


class Pinball(Loss):
    """Quantile loss with a parameter."""

    loss = staticmethod(pinball)
    dloss = staticmethod(dpinball)

    def __init__(self, quantile=0.5):
        self.quantile = quantile


@numba.njit
def wrong_dlog(p, y):
    return -0.5 * y / (np.exp(p * y) + 1.0)  # off by a factor of 2


class WrongLog(Loss):
    loss = staticmethod(user_log)
    dloss = staticmethod(wrong_dlog)


@numba.njit
def wrong_dsoftmax(p, y, out):
    e = np.exp(p - p.max())
    out[:] = e / e.sum()  # forgets the -1 at the true class


@numba.njit
def softmax_value(p, y):
    top = p.max()
    return top + np.log(np.exp(p - top).sum()) - p[y]


class WrongSoftmax(MulticlassLoss):
    loss = staticmethod(softmax_value)
    dloss = staticmethod(wrong_dsoftmax)
