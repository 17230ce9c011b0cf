"""
===========
Quick start
===========

Train :class:`~skgd.MinibatchSGDClassifier` on real data, use it like any
scikit-learn classifier, and watch its training objective fall epoch by
epoch for a few batch sizes.

The data is UCI Adult (will a person earn more than 50K a year?), bundled
with skgd as :func:`skgd.datasets.load_adult`: 32,561 training and 16,281
test rows with 123 binary features, as a sparse CSR matrix.
"""

# %%
# Fit, score, predict
# -------------------
# The estimator takes the same arguments as
# :class:`sklearn.linear_model.SGDClassifier`, plus ``batch_size``.

import matplotlib.pyplot as plt
import numpy as np

from skgd import MinibatchSGDClassifier
from skgd.datasets import load_adult

X_train, y_train, X_test, y_test = load_adult()
print(f"train {X_train.shape}, test {X_test.shape}, labels {np.unique(y_train)}")

clf = MinibatchSGDClassifier(loss="log_loss", random_state=0)
clf.fit(X_train, y_train)
print(f"{clf.n_iter_} epochs, test accuracy {clf.score(X_test, y_test):.4f}")

# %%
# ``log_loss`` gives class probabilities; the columns follow ``classes_``.

print(clf.classes_)
print(clf.predict_proba(X_test[:3]).round(3))

# %%
# The training objective, epoch by epoch
# --------------------------------------
# ``loss_curve_`` holds the mean training objective (loss plus penalty) of
# each epoch. ``tol=None`` runs all ``max_iter`` epochs so the curves have
# the same length. ``batch_size=1`` is classic per-sample SGD; a larger
# minibatch follows the mean gradient of its samples, with a step as long as
# ``batch_size`` per-sample steps, so an epoch covers the same ground in
# fewer, less noisy steps.

fig, ax = plt.subplots(figsize=(7, 4))
for batch_size in (1, 32, 256):
    model = MinibatchSGDClassifier(
        loss="log_loss", batch_size=batch_size, max_iter=15,
        tol=None, random_state=0,
    ).fit(X_train, y_train)
    label = f"batch_size={batch_size} (test acc. {model.score(X_test, y_test):.3f})"
    ax.plot(range(1, 16), model.loss_curve_, marker="o", label=label)
ax.set_xlabel("epoch")
ax.set_ylabel("mean training objective")
ax.set_title("MinibatchSGDClassifier(loss='log_loss') on UCI Adult")
ax.legend()
fig.tight_layout()
plt.show()
