"""Learning-rate schedules, as scikit-learn's SGD defines them.

``t`` counts training samples seen (starting at 1), exactly as in
:class:`sklearn.linear_model.SGDClassifier`, so ``eta0`` and ``power_t`` mean
the same thing. A minibatch of ``m`` samples takes one step whose size is the
sum of the ``m`` per-sample rates (approximated by ``m`` times the rate at the
batch's middle sample) along the **mean** gradient of the batch: the step
covers as much ground as ``m`` per-sample steps, which is why the same
``eta0`` works for every ``batch_size`` (the linear scaling rule of Goyal et
al., 2017, with ``t`` counted in samples).

- ``constant``: ``eta = eta0``.
- ``optimal``: ``eta = 1 / (alpha * (t0 + t - 1))`` with Bottou's heuristic
  ``t0`` (see :func:`optimal_init`); the default for classification.
- ``invscaling``: ``eta = eta0 / t ** power_t``; the default for regression.
- ``adaptive``: ``eta = eta0`` while training improves; divided by 5 each
  time ``n_iter_no_change`` epochs in a row fail to improve by ``tol``.
"""

import math

import numba

CONSTANT, OPTIMAL, INVSCALING, ADAPTIVE = 0, 1, 2, 3

SCHEDULES = {
    "constant": CONSTANT,
    "optimal": OPTIMAL,
    "invscaling": INVSCALING,
    "adaptive": ADAPTIVE,
}


def optimal_init(alpha, dloss):
    """Offset ``t0`` of the ``optimal`` schedule (Bottou's SGD heuristic).

    The first step size is chosen as if the weights had the typical norm
    ``sqrt(1 / sqrt(alpha))`` of a regularised solution.

    Parameters
    ----------
    alpha : float
        Regularisation strength, > 0.
    dloss : callable
        Derivative of the loss, ``dloss(p, y)``.

    Returns
    -------
    t0 : float
    """
    typw = math.sqrt(1.0 / math.sqrt(alpha))
    eta0 = typw / max(1.0, dloss(-typw, 1.0))
    return 1.0 / (eta0 * alpha)


@numba.njit(cache=True, nogil=True)
def learning_rate(hyper, t):
    """Per-sample learning rate at sample count ``t`` (compiled)."""
    if hyper.schedule == OPTIMAL:
        return 1.0 / (hyper.alpha * (hyper.batch_size * hyper.optimal_init + t - 1.0))
    if hyper.schedule == INVSCALING:
        return hyper.eta0 / t**hyper.power_t
    return hyper.eta0
