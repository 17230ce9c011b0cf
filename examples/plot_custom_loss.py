"""
=====================================================
A loss of your own: quantile regression with pinball
=====================================================

skgd's losses are plain objects with two compiled functions, so a loss that
scikit-learn's SGD does not offer takes a dozen lines. Here the pinball
(quantile) loss trains :class:`~skgd.MinibatchSGDRegressor` to predict the
10th, 50th and 90th percentiles of a noisy target, after
:func:`skgd.check_gradient` has confirmed its derivative.
"""

# %%
# The loss
# --------
# ``loss(p, y, quantile)`` and its derivative in ``p``; the constructor's
# argument ``quantile`` is passed to both, so ``get_params``, ``clone`` and
# grid searches over ``loss__quantile`` work.

import matplotlib.pyplot as plt
import numba
import numpy as np

from skgd import MinibatchSGDRegressor, check_gradient
from skgd.losses import Loss


@numba.njit
def pinball(p, y, quantile):
    r = y - p
    return quantile * r if r >= 0.0 else (quantile - 1.0) * r


@numba.njit
def dpinball(p, y, quantile):
    return -quantile if y - p >= 0.0 else 1.0 - quantile


class Pinball(Loss):
    """Pinball loss: its minimiser is the ``quantile``-th quantile of y."""

    loss = staticmethod(pinball)
    dloss = staticmethod(dpinball)

    def __init__(self, quantile=0.5):
        self.quantile = quantile


# %%
# Check the derivative before trusting it
# ---------------------------------------
# The check skips the kink at ``p == y`` and compares everywhere else.

print("largest relative error:", check_gradient(Pinball(quantile=0.9)))

# %%
# Train one model per quantile
# ----------------------------
# Heteroscedastic data: the noise grows with x, so the quantile lines fan out.

rng = np.random.RandomState(0)
x = rng.uniform(0, 10, 3000)
y = 0.5 * x + (0.2 + 0.3 * x) * rng.randn(x.size)
X = np.column_stack([x, x**2]) / np.array([10.0, 100.0])

grid = np.linspace(0, 10, 200)
G = np.column_stack([grid, grid**2]) / np.array([10.0, 100.0])
fig, ax = plt.subplots(figsize=(7, 4))
ax.scatter(x, y, s=3, alpha=0.3, color="gray")
for q, color in [(0.1, "tab:blue"), (0.5, "tab:green"), (0.9, "tab:red")]:
    reg = MinibatchSGDRegressor(loss=Pinball(quantile=q), learning_rate="constant",
                                eta0=0.05, batch_size=16, max_iter=50, tol=None,
                                average=True, penalty=None, random_state=0)
    reg.fit(X, y)
    below = np.mean(y <= reg.predict(X))
    ax.plot(grid, reg.predict(G), color=color, label=f"q={q}: {below:.0%} of y below")
    print(f"quantile {q}: fraction of targets below the line {below:.3f}")
ax.set_xlabel("x")
ax.set_ylabel("y")
ax.set_title("Quantile regression with a custom pinball loss")
ax.legend()
plt.tight_layout()
plt.show()
