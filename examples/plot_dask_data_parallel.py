"""
=============================================
Training on every worker of a Dask cluster
=============================================

:class:`skgd.dask.DataParallel` trains one model on all the workers of a
Dask cluster at once. Each worker runs the compiled SGD epochs over the
blocks of data it holds, starting from the current model; after every epoch
(a *round*) the client averages the workers' models, weighted by their
numbers of rows, and the next round starts from the average (iterative
parameter mixing, McDonald, Hall & Mann 2010). Only the model travels; the
data stays on the workers.

This example trains the same classifier on one worker and on two, and
plots the test accuracy after each round next to a plain ``fit`` in this
process. It needs ``pip install "skgd[dask]"``.
"""

# %%
# A cluster and a chunked data set
# --------------------------------
# Two workers, run as threads of this process to keep the example light
# (skgd's compiled epochs release the GIL, so they do run at the same time);
# ``LocalCluster(processes=True)`` or a remote cluster work the same way.

import warnings

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from dask.distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

from skgd import MinibatchSGDClassifier
from skgd.dask import DataParallel

warnings.filterwarnings("ignore", category=ConvergenceWarning)  # fixed epochs, tol=None

cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                       dashboard_address=":0")
client = Client(cluster)
workers = sorted(client.scheduler_info()["workers"])

rng = np.random.RandomState(0)
n, d = 60_000, 20
coef = rng.randn(d)
X = da.random.RandomState(1).standard_normal((n, d), chunks=(10_000, d))
y = ((X @ coef + 2.0 * da.random.RandomState(2).standard_normal(n, chunks=10_000)) > 0)
X, y = client.persist([X, y.astype(int)])
X_test = rng.randn(10_000, d)
y_test = ((X_test @ coef + 2.0 * rng.randn(10_000)) > 0).astype(int)

# %%
# Accuracy after each round
# -------------------------
# With ``tol=None`` a fit of ``r`` epochs is the first ``r`` rounds of a
# longer one, so fitting with ``max_iter = 1, 2, ...`` traces the rounds.
# ``workers=`` restricts training to the listed workers (Dask moves the
# other blocks there).

rounds = np.arange(1, 7)


def make(max_iter):
    return MinibatchSGDClassifier(loss="log_loss", batch_size=32, learning_rate="constant",
                                  eta0=0.005, max_iter=max_iter, tol=None, random_state=0)


curves = {}
for label, chosen in [("1 worker", workers[:1]), ("2 workers", workers)]:
    curves[label] = [DataParallel(make(r), workers=chosen).fit(X, y).score(X_test, y_test)
                     for r in rounds]
X_local, y_local = client.compute([X, y], sync=True)
curves["one process (fit)"] = [make(r).fit(X_local, y_local).score(X_test, y_test)
                               for r in rounds]
for label, accuracy in curves.items():
    print(f"{label:>18}: " + " ".join(f"{a:.4f}" for a in accuracy))

# %%
# On one worker every round is exactly an epoch of ``fit``: the two curves
# coincide. On two, each worker takes half the steps per round, from the
# mixed model; after a round or two the mixed model is as accurate as the
# single process's.

fig, ax = plt.subplots(figsize=(6, 4))
styles = {"1 worker": "o-", "2 workers": "s-", "one process (fit)": "k:"}
for label, accuracy in curves.items():
    ax.plot(rounds, accuracy, styles[label], label=label)
ax.set_xlabel("round (epochs)")
ax.set_ylabel("test accuracy")
ax.set_title("DataParallel: accuracy per round")
ax.legend()
fig.tight_layout()
plt.show()

client.close()
cluster.close()
