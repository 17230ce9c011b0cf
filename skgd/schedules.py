"""Learning-rate schedules, as scikit-learn's SGD defines them.

``t`` counts training samples seen (starting at 1), exactly as in
:class:`sklearn.linear_model.SGDClassifier`, so ``eta0`` and ``power_t`` mean
the same thing. How a minibatch of ``m`` samples steps:

1. **Linear scaling.** One step along the **mean** gradient of the batch,
   with a step size of ``m`` times the per-sample rate at the batch's middle
   sample: the step covers as much ground as ``m`` per-sample steps, so the
   same ``eta0`` works for every ``batch_size`` (Goyal et al., 2017). On
   sparse data, where the rows of a batch touch different columns, this is
   exactly what ``m`` per-sample steps would do to each weight.
2. **A cap from the data's curvature** for losses that declare it: the
   weights' step never exceeds ``1 / (curvature * L_w(m))`` and the
   intercepts' ``1 / (curvature * L_b(m))`` (their own blocks'
   smoothness: the intercept is in every row, so on sparse text its step
   must stay far shorter than the rare features'). For losses with a
   bounded derivative (log, hinge, Huber, softmax) a cap never goes below
   one per-sample step; the others get one hard cap from the joint
   smoothness. See :mod:`skgd._smoothness` and
   :attr:`skgd.losses.Loss.curvature`. (Rules that start large batches more
   gently, such as counting the offset ``t0`` of 'optimal' in steps as
   Pegasos does, or in ``sqrt(m)`` samples, were measured and learned
   markedly slower on streamed text and small data sets.)

With ``batch_size=1`` the rule is scikit-learn's per-sample one.

- ``constant``: ``eta = eta0``.
- ``optimal``: ``eta = 1 / (alpha * (t0 + t - 1))`` with Bottou's heuristic
  ``t0`` (see :func:`optimal_init`); the default for classification.
- ``invscaling``: ``eta = eta0 / t ** power_t``; the default for regression.
- ``adaptive``: ``eta = eta0`` while training improves; divided by 5 each
  time ``n_iter_no_change`` epochs in a row fail to improve by ``tol``.
- ``pa1``, ``pa2``: passive-aggressive steps (Crammer et al. 2006), as
  scikit-learn >= 1.8 defines them, for the hinge loss (classification) and
  the epsilon-insensitive loss (regression): each row steps by
  ``tau = min(eta0, loss / ||x||^2)`` (PA-I) or ``tau = loss / (||x||^2 +
  1 / (2 eta0))`` (PA-II) along its loss derivative, and L2 decays the
  weights at rate ``eta0``. A minibatch takes the mean of its rows' steps;
  no step cap applies. The ``tol`` rule watches the loss alone, as in
  scikit-learn.
"""

import math

CONSTANT, OPTIMAL, INVSCALING, ADAPTIVE, PA1, PA2 = 0, 1, 2, 3, 4, 5

SCHEDULES = {
    "constant": CONSTANT,
    "optimal": OPTIMAL,
    "invscaling": INVSCALING,
    "adaptive": ADAPTIVE,
    "pa1": PA1,
    "pa2": PA2,
}

# The loss each passive-aggressive schedule needs, by estimator kind.
PA_LOSSES = {"classifier": "hinge", "regressor": "epsilon_insensitive"}


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
