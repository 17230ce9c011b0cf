"""
====================================================
Tuning the learning rate and the batch size together
====================================================

:class:`~skgd.MinibatchSGDClassifier` is a scikit-learn estimator, so
:class:`~sklearn.model_selection.GridSearchCV` tunes it like any other, and
:class:`skgd.model_selection.GridSearchCV`, a drop-in for it, gives the same
results while sharing work across the candidates of each fold. Here we
search the initial learning rate ``eta0`` of the ``constant`` schedule
together with ``batch_size``, on the bundled UCI Adult data
(:func:`skgd.datasets.load_adult`), time both searches, and draw the
cross-validated accuracy of every pair as a heat map.

The schedule counts samples, not steps: a minibatch of ``m`` samples takes
one step of ``m`` times the per-sample rate along its mean gradient. The
same ``eta0`` therefore means the same thing for every batch size, which is
what lets the two be searched on one grid.
"""

# %%
# The search
# ----------
# 5 learning rates times 5 batch sizes, 3-fold cross-validation, 10 epochs
# per fit (``tol=None`` fixes the number of epochs, so every cell of the grid
# gets the same budget of passes over the data).

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn import model_selection as sklearn_search

from skgd import MinibatchSGDClassifier
from skgd.datasets import load_adult
from skgd.model_selection import GridSearchCV

X_train, y_train, X_test, y_test = load_adult()

param_grid = {
    "eta0": [1e-4, 1e-3, 1e-2, 1e-1, 1.0],
    "batch_size": [1, 8, 32, 128, 512],
}
estimator = MinibatchSGDClassifier(
    loss="log_loss", learning_rate="constant", alpha=1e-5, max_iter=10,
    tol=None, random_state=0,
)
# compile skgd's two passes (one row a step, minibatches) outside the clocks:
# once per machine, then cached
for batch_size in (1, 32):
    estimator.set_params(batch_size=batch_size).fit(X_train[:100], y_train[:100])

start = time.perf_counter()
search = GridSearchCV(estimator, param_grid, cv=3, scoring="accuracy")
search.fit(X_train, y_train)
ours = time.perf_counter() - start

start = time.perf_counter()
reference = sklearn_search.GridSearchCV(estimator, param_grid, cv=3, scoring="accuracy")
reference.fit(X_train, y_train)
theirs = time.perf_counter() - start

print(f"skgd.model_selection.GridSearchCV: {ours:.2f} s; scikit-learn's: {theirs:.2f} s")
print("same scores as scikit-learn's:",
      np.allclose(search.cv_results_["mean_test_score"],
                  reference.cv_results_["mean_test_score"], rtol=0, atol=1e-10))
print("best parameters:", search.best_params_)
# (The two times are close: until skgd trains a fold's candidates in one
# pass over the rows, a bare estimator shares only the split of the data;
# a Pipeline also shares its earlier steps, see the user guide.)
print(f"cross-validated accuracy {search.best_score_:.4f}, "
      f"test accuracy {search.score(X_test, y_test):.4f}")

# %%
# The heat map
# ------------
# ``cv_results_`` lists the candidates in the order of ``ParameterGrid``
# (sorted parameter names, the last one varying fastest), so the mean scores
# reshape into a ``batch_size`` by ``eta0`` table. Reading down a column
# compares batch sizes at the same per-sample rate; reading along a row
# compares rates at the same batch size.

scores = search.cv_results_["mean_test_score"].reshape(
    len(param_grid["batch_size"]), len(param_grid["eta0"])
)

fig, ax = plt.subplots(figsize=(6.5, 5))
image = ax.imshow(scores, cmap="viridis", origin="lower")
ax.set_xticks(range(len(param_grid["eta0"])), [f"{v:g}" for v in param_grid["eta0"]])
ax.set_yticks(range(len(param_grid["batch_size"])), param_grid["batch_size"])
ax.set_xlabel("eta0 (learning_rate='constant')")
ax.set_ylabel("batch_size")
middle = (scores.min() + scores.max()) / 2
for (i, j), value in np.ndenumerate(scores):
    ax.text(j, i, f"{value:.3f}", ha="center", va="center",
            color="black" if value > middle else "white")
fig.colorbar(image, ax=ax, label="mean cross-validated accuracy")
ax.set_title("GridSearchCV on UCI Adult")
fig.tight_layout()
plt.show()
