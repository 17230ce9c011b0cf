"""
==================================
Momentum and Nesterov against SGD
==================================

Heavy-ball momentum (Polyak 1964) adds a fraction of the previous step to
each new one, like a ball that keeps rolling; Nesterov's form (Sutskever et
al. 2013) looks ahead along that direction first. With a small constant
learning rate, both reach a low objective in far fewer epochs than plain
SGD on an ill-conditioned problem.
"""

import matplotlib.pyplot as plt
import numpy as np

from skgd import MinibatchSGDRegressor

# An ill-conditioned least-squares problem: feature scales from 0.1 to 3.
rng = np.random.RandomState(0)
X = rng.randn(5000, 20) * np.logspace(-1, np.log10(3), 20)
y = X @ rng.randn(20) + 0.1 * rng.randn(5000)

fig, ax = plt.subplots(figsize=(7, 4))
for label, kw in [("plain SGD", dict()),
                  ("momentum 0.9", dict(momentum=0.9)),
                  ("Nesterov 0.9", dict(momentum=0.9, nesterov=True))]:
    reg = MinibatchSGDRegressor(learning_rate="constant", eta0=1e-4, batch_size=16,
                                max_iter=30, tol=None, penalty=None, random_state=0, **kw)
    reg.fit(X, y)
    print(f"{label:13s} final objective {reg.loss_curve_[-1]:.4f}, R^2 {reg.score(X, y):.4f}")
    ax.plot(np.arange(1, 31), reg.loss_curve_, marker="o", markersize=3, label=label)
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("mean training objective")
ax.set_title("Least squares, constant eta0=1e-4, batch_size=16")
ax.legend()
plt.tight_layout()
plt.show()
