"""
=====================================================
A learning rate with nothing to tune: ``'auto'``
=====================================================

``learning_rate='auto'`` measures its step on the data: the largest step
the data's curvature allows at the batch size (the step cap), the
distance-over-gradients rate of DoG (Ivgi, Hinder & Carmon 2023) under it,
momentum when the cap holds the step back (dense data), and an average of
the iterates weighted by ``t**2``. It has no ``eta0`` to search.

This example fits logistic regression on the adult data (``log_loss``,
``alpha=1e-4``) at three batch sizes and plots the relative gap of the
objective to the exact optimum
(:class:`~sklearn.linear_model.LogisticRegression`) after
each epoch, for ``'auto'`` and for the best constant rate of a grid over
``eta0`` (with averaging), chosen after the fact by its final gap.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression

from skgd import MinibatchSGDClassifier
from skgd.datasets import load_adult

X, y = load_adult()[:2]
alpha, epochs = 1e-4, 12


def objective(coef, intercept):
    z = y * (X @ coef.ravel() + intercept[0])
    return np.mean(np.logaddexp(0.0, -z)) + 0.5 * alpha * float(coef.ravel() @ coef.ravel())


exact = LogisticRegression(C=1.0 / (alpha * X.shape[0]), tol=1e-10, max_iter=10_000).fit(X, y)
best = objective(exact.coef_, exact.intercept_)


def gaps(**params):
    """Relative objective gap after each epoch (one partial_fit pass)."""
    est = MinibatchSGDClassifier(loss="log_loss", alpha=alpha, random_state=0, **params)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cap shortening large eta0 is expected here
        for _ in range(epochs):
            est.partial_fit(X, y, classes=[-1, 1])
            out.append((objective(est.coef_, est.intercept_) - best) / best)
    return np.array(out)


# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharey=True)
for ax, batch_size in zip(axes, (1, 32, 256), strict=True):
    auto = gaps(learning_rate="auto", batch_size=batch_size)
    grid = {eta0: gaps(learning_rate="constant", eta0=eta0, average=True,
                       batch_size=batch_size) for eta0 in (1e-3, 1e-2, 1e-1)}
    eta0 = min(grid, key=lambda e: grid[e][-1] if np.isfinite(grid[e][-1]) else np.inf)
    ax.semilogy(np.arange(1, epochs + 1), auto, label="'auto'")
    ax.semilogy(np.arange(1, epochs + 1), grid[eta0], "--",
                label=f"best constant (eta0={eta0:g})")
    ax.set_title(f"batch_size={batch_size}")
    ax.set_xlabel("epoch")
    ax.legend()
axes[0].set_ylabel("relative objective gap")
fig.tight_layout()
plt.show()
