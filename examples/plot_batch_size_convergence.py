"""
===================================
Convergence for several batch sizes
===================================

A minibatch of ``m`` rows takes one step along the mean gradient, about as
long as ``m`` per-sample steps (the schedule counts samples, as
scikit-learn's does). So, with every other argument at its default, the
training objective falls per *epoch* at much the same rate for any batch
size, and no ``eta0`` needs retuning. The data is UCI Adult.
"""

import matplotlib.pyplot as plt

from skgd import MinibatchSGDClassifier
from skgd.datasets import load_adult
from skgd.plotting import LossCurveDisplay

X_train, y_train, X_test, y_test = load_adult()

fig, ax = plt.subplots(figsize=(7, 4))
for batch_size in (1, 8, 32, 128, 512):
    clf = MinibatchSGDClassifier(loss="log_loss", batch_size=batch_size, max_iter=20,
                                 tol=None, random_state=0).fit(X_train, y_train)
    acc = clf.score(X_test, y_test)
    print(f"batch_size={batch_size:4d}: test accuracy {acc:.4f}")
    LossCurveDisplay.from_estimator(clf, ax=ax, name=f"batch_size={batch_size} (acc {acc:.3f})")
ax.set_yscale("log")
ax.set_title("UCI Adult, log_loss: objective per epoch")
plt.tight_layout()
plt.show()
