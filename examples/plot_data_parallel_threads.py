"""
===========================================
Training one model on every core
===========================================

:class:`skgd.DataParallel` trains one model on several threads of this
process: it deals the rows into ``n_jobs`` shards (index arrays into X, no
copies), runs the compiled SGD pass of every shard at the same time (the
pass releases the GIL) and averages the shards' models after every epoch,
weighted by their rows (iterative parameter mixing).

This example fits the same classifier with 1, 2 and 4 threads and plots
the time of the fit and the test accuracy against the number of threads.
With one thread the fit is exactly ``fit``. More threads than cores cost a
little (threads take turns), and on a machine with fewer cores than
threads the times show it.
"""

# %%
# Data: 120k rows, 50 features, a noisy linear rule

import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skgd import DataParallel, MinibatchSGDClassifier

warnings.filterwarnings("ignore", category=ConvergenceWarning)  # fixed epochs, tol=None

rng = np.random.RandomState(0)
n, d = 120_000, 50
coef = rng.randn(d)
X = rng.randn(n, d)
y = (X @ coef + 2.0 * rng.randn(n) > 0).astype(int)
X_test = rng.randn(20_000, d)
y_test = (X_test @ coef + 2.0 * rng.randn(20_000) > 0).astype(int)


def make():
    return MinibatchSGDClassifier(loss="log_loss", batch_size=32, max_iter=5, tol=None,
                                  random_state=0)


# %%
# Time and accuracy against threads
# ---------------------------------
# The first fit compiles the pass (once per machine); it is left out.

make().fit(X[:1000], y[:1000])
threads = [1, 2, 4]
seconds, accuracy = [], []
for n_jobs in threads:
    start = time.perf_counter()
    model = DataParallel(make(), n_jobs=n_jobs).fit(X, y)
    seconds.append(time.perf_counter() - start)
    accuracy.append(model.score(X_test, y_test))
    print(f"{n_jobs} thread(s): {seconds[-1]:.2f} s, test accuracy {accuracy[-1]:.4f}")
print(f"plain fit: test accuracy {make().fit(X, y).score(X_test, y_test):.4f}; "
      f"this machine has {os.cpu_count()} cores")

# %%
# Each shard's steps see a share of the rows, so a mixed epoch is not a
# sequential one; on data this large the accuracy barely moves, while the
# time falls with the cores available.

fig, (ax_time, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
ax_time.plot(threads, seconds, "o-")
ax_time.set_xlabel("threads (n_jobs)")
ax_time.set_ylabel("fit time (s)")
ax_time.set_xticks(threads)
ax_acc.plot(threads, accuracy, "s-")
ax_acc.set_xlabel("threads (n_jobs)")
ax_acc.set_ylabel("test accuracy")
ax_acc.set_xticks(threads)
fig.tight_layout()
plt.show()
