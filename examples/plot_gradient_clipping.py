"""
===========================================
Gradient clipping against exploding updates
===========================================

Badly scaled features make gradients huge. A loss with a known curvature
gets skgd's step-size cap, but a loss of your own that declares none does
not: with features in the thousands its weights overflow and training stops
with an error that names the epoch. Clipping each minibatch gradient to an
L2 norm of at most ``clip_norm`` keeps every step bounded, and the same
model trains.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from skgd import MinibatchSGDRegressor
from skgd.losses import SquaredError


class UncappedSquaredError(SquaredError):
    """Squared error without a declared curvature: no step-size cap."""

    curvature = None


rng = np.random.RandomState(0)
X = 1000 * rng.randn(2000, 5)  # unscaled features
y = X @ rng.randn(5) + 10 * rng.randn(2000)
common = dict(loss=UncappedSquaredError(), learning_rate="constant", eta0=0.01,
              batch_size=16, tol=None, random_state=0)

try:
    MinibatchSGDRegressor(max_iter=20, **common).fit(X, y)
except ValueError as err:
    print("without clipping:", err)

# Chunk by chunk (100 rows each) without clipping, to draw how fast the
# objective climbs before it overflows: the failing call leaves the model as
# it was, so the curve stops at the last finite value.
unclipped = MinibatchSGDRegressor(**common)
curve = []
for start in range(0, X.shape[0], 100):
    try:
        unclipped.partial_fit(X[start:start + 100], y[start:start + 100])
    except ValueError as err:
        print(f"chunk {start // 100 + 1}: {err}")
        break
    curve.append(unclipped.loss_curve_[-1])

clipped = MinibatchSGDRegressor(clip_norm=1.0, **common)
clipped_curve = []
for start in range(0, X.shape[0], 100):
    clipped.partial_fit(X[start:start + 100], y[start:start + 100])
    clipped_curve.append(clipped.loss_curve_[-1])
print(f"with clip_norm=1, one pass: R^2 {clipped.score(X, y):.4f}")

fig, ax = plt.subplots(figsize=(7, 4))
# log10 by hand: the last values before the overflow are near 1e300, beyond
# what a log-scaled axis can tick
ax.plot(np.arange(1, len(curve) + 1), np.log10(curve), marker="o", color="tab:red",
        label="no clipping (the next chunk overflows)")
ax.plot(np.arange(1, len(clipped_curve) + 1), np.log10(clipped_curve), marker="o",
        color="tab:green", label="clip_norm=1.0")
ax.set_xlabel("chunk of 100 rows")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.set_ylabel("log10 of the mean training objective")
ax.set_title("Features scaled by 1000")
ax.legend()
plt.tight_layout()
plt.show()
