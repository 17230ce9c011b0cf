"""
=====================================
Learning-rate schedules, side by side
=====================================

The four schedules of scikit-learn's SGD, on the same problem: the step
size they take against the samples seen (drawn from their formulas, as the
engine computes them), and the objective each reaches epoch by epoch.
``adaptive`` keeps ``eta0`` while the objective improves and divides it by
5 each time it stalls.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from sklearn.exceptions import ConvergenceWarning

from skgd import MinibatchSGDClassifier
from skgd.datasets import load_adult
from skgd.schedules import optimal_init

X_train, y_train, X_test, y_test = load_adult()
alpha, eta0, power_t = 1e-4, 0.01, 0.5
t = np.arange(1, 20 * X_train.shape[0], 1000, dtype=float)
t0 = optimal_init(alpha, lambda p, y: -1.0)  # log loss: |dloss| ~ 1 there

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.plot(t, 1 / (alpha * (t0 + t - 1)), label="optimal")
left.plot(t, eta0 / t**power_t, label="invscaling")
left.plot(t, np.full_like(t, eta0), label="constant / adaptive (start)")
left.set_xscale("log")
left.set_yscale("log")
left.set_xlabel("samples seen t")
left.set_ylabel("per-sample learning rate")
left.legend()

for schedule in ("optimal", "invscaling", "constant", "adaptive"):
    clf = MinibatchSGDClassifier(loss="log_loss", learning_rate=schedule, eta0=eta0,
                                 power_t=power_t, alpha=alpha, batch_size=32,
                                 max_iter=20, tol=1e-4, n_iter_no_change=3,
                                 random_state=0)
    # 20 epochs keep the example short: the slow schedules have not
    # converged by then (their ConvergenceWarning is what the plot shows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    print(f"{schedule:10s} epochs {clf.n_iter_:2d}, test accuracy {clf.score(X_test, y_test):.4f}")
    right.plot(np.arange(1, clf.n_iter_ + 1), clf.loss_curve_, marker="o", markersize=3,
               label=schedule)
right.set_xlabel("epoch")
right.xaxis.set_major_locator(MaxNLocator(integer=True))
right.set_ylabel("mean training objective")
right.legend()
fig.suptitle("UCI Adult, log_loss, batch_size=32")
plt.tight_layout()
plt.show()
