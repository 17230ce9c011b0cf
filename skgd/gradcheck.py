"""Numerical gradient checking for any :class:`skgd.losses.Loss`."""

import numpy as np
from sklearn.utils import check_random_state

from .losses import CLASSIFICATION_LOSSES, Loss, MulticlassLoss, get_loss

__all__ = ["check_gradient"]


def check_gradient(loss, *, n_points=500, n_classes=4, h=1e-6, tol=1e-4, random_state=0):
    """Compare a loss's ``dloss`` with a central difference of its ``loss``.

    The derivative is checked at ``n_points`` random scores (and targets).
    Points near a kink of a non-smooth loss (hinge, epsilon-insensitive, ...)
    are recognised because the one-sided difference quotients disagree there,
    and skipped; everywhere else ``(loss(p + h) - loss(p - h)) / (2 h)`` must
    match ``dloss(p)`` (per component for a multiclass loss).

    Parameters
    ----------
    loss : str or Loss
        A built-in loss name (as ``MinibatchSGDClassifier(loss=...)`` takes)
        or a :class:`~skgd.losses.Loss` / :class:`~skgd.losses.MulticlassLoss`
        instance.
    n_points : int, default=500
        Number of random points.
    n_classes : int, default=4
        Length of the score vector for a multiclass loss.
    h : float, default=1e-6
        Finite-difference step.
    tol : float, default=1e-4
        Largest relative error accepted,
        ``|analytic - numeric| / max(1, |analytic|, |numeric|)``.
    random_state : int, RandomState instance or None, default=0
        Seeds the points.

    Returns
    -------
    max_error : float
        The largest relative error found.

    Raises
    ------
    AssertionError
        If the error exceeds ``tol``; the message names the loss and the
        worst point.

    Examples
    --------
    >>> from skgd import check_gradient
    >>> check_gradient("log_loss") < 1e-6
    True
    """
    loss = get_loss(loss, 0.1, CLASSIFICATION_LOSSES) if not isinstance(loss, Loss) else loss
    rng = check_random_state(random_state)
    params = loss.params()
    if isinstance(loss, MulticlassLoss):
        worst, where = _check_vector(loss, params, rng, n_points, n_classes, h)
    else:
        worst, where = _check_scalar(loss, params, rng, n_points, h)
    if worst > tol:
        raise AssertionError(
            f"{loss!r}: dloss disagrees with a central difference of loss, relative "
            f"error {worst:.3g} > tol={tol:g} at {where}."
        )
    return worst


def _kink(f, x, h):
    """Whether ``f`` bends sharply between ``x - h`` and ``x + h``."""
    forward = (f(x + h) - f(x)) / h
    backward = (f(x) - f(x - h)) / h
    return abs(forward - backward) > 1e-3 * max(1.0, abs(forward), abs(backward))


def _relative_error(analytic, numeric):
    return abs(analytic - numeric) / max(1.0, abs(analytic), abs(numeric))


def _check_scalar(loss, params, rng, n_points, h):
    worst, where = 0.0, "no point (all near kinks)"
    # +-1 targets as classification uses, and real targets as regression does
    ys = np.where(rng.rand(n_points) < 0.5, rng.choice([-1.0, 1.0], n_points),
                  2.0 * rng.randn(n_points))
    for p, y in zip(3.0 * rng.randn(n_points), ys, strict=True):
        def f(q):
            return loss.loss(q, y, *params)

        if _kink(f, p, h):
            continue
        analytic = loss.dloss(p, y, *params)
        numeric = (f(p + h) - f(p - h)) / (2 * h)
        err = _relative_error(analytic, numeric)
        if err > worst:
            worst = err
            where = f"p={p:.6g}, y={y:.6g} (dloss {analytic:.6g}, numeric {numeric:.6g})"
    return worst, where


def _check_vector(loss, params, rng, n_points, n_classes, h):
    worst, where = 0.0, "no point (all near kinks)"
    out = np.empty(n_classes)
    for _ in range(n_points):
        p = 3.0 * rng.randn(n_classes)
        y = int(rng.randint(n_classes))
        loss.dloss(p, y, out, *params)
        for k in range(n_classes):
            def f(q, k=k):
                shifted = p.copy()
                shifted[k] = q
                return loss.loss(shifted, y, *params)

            if _kink(f, p[k], h):
                continue
            numeric = (f(p[k] + h) - f(p[k] - h)) / (2 * h)
            err = _relative_error(out[k], numeric)
            if err > worst:
                worst = err
                where = (f"p={np.array2string(p, precision=4)}, y={y}, component {k} "
                         f"(dloss {out[k]:.6g}, numeric {numeric:.6g})")
    return worst, where
