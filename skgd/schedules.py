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
- ``auto``: nothing to tune (``eta0`` is not used). Each batch's step is the
  distance-over-gradients rate of DoG (Ivgi, Hinder & Carmon 2023), ``m *
  r / sqrt(G)`` (``r`` the farthest the weights have moved from the origin,
  ``G`` the summed squared per-sample gradient norms), under the step cap
  without its per-sample floor (for bounded-derivative losses the cap reads
  the mean row norm, not the largest). On dense data, when the cap shortens
  the step DoG wants, heavy-ball momentum ``mu = 1 - cap / wanted`` (at
  most ``AUTO_MOMENTUM``) makes up the difference, with the L2 decay at the
  long-run step ``eta / (1 - mu)``. A batch shorter than ``batch_size``
  (the ``m`` rows left over at the end of a pass) takes ``m / batch_size``
  of a full batch's steps, and a full batch's momentum: by its own, below
  the cap, it would step its rows many times further than the capped full
  batches step theirs, and it would want no momentum, wiping the velocity
  every pass. The published model is the average of
  the iterates weighted by ``t ** 2`` (polynomial-decay averaging, Shamir &
  Zhang 2013), whatever ``average`` says (an int still says when it
  begins). The intercept is not damped on sparse data: its own cap holds it.
  A stream keeps ``r``, ``G`` and the average across ``partial_fit`` calls;
  there, with an L2 penalty, ``r`` is at least ``sqrt(2 F(w0) / alpha)``,
  the bound on the optimum's norm from the objective at the first batch's
  weights (a stream sees each row once: no time to measure the distance).
"""

import math

CONSTANT, OPTIMAL, INVSCALING, ADAPTIVE, PA1, PA2, AUTO = 0, 1, 2, 3, 4, 5, 6

SCHEDULES = {
    "constant": CONSTANT,
    "optimal": OPTIMAL,
    "invscaling": INVSCALING,
    "adaptive": ADAPTIVE,
    "pa1": PA1,
    "pa2": PA2,
    "auto": AUTO,
}


def is_passive_aggressive(schedule):
    """Whether a schedule code is one of the passive-aggressive rules."""
    return PA1 <= schedule <= PA2

# The most momentum 'auto' uses (skgd._kernels.auto_momentum): a long-run
# step of at most 20 capped steps. (0.9 held digits at batch 256, where DoG
# wants about 12 capped steps, mu = 0.915, to a gap of 0.011 after 50 epochs;
# 0.95 reaches 0.002.)
AUTO_MOMENTUM = 0.95

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
