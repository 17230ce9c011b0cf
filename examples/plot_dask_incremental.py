"""
==========================
Scaling out with Dask
==========================

`Dask <https://www.dask.org>`_ runs Python on a cluster, and `dask-ml
<https://ml.dask.org>`_ connects scikit-learn estimators to it. skgd
estimators work with it as they are:

- :class:`dask_ml.wrappers.Incremental` feeds the chunks of a dask array,
  one after the other, to :meth:`~skgd.MinibatchSGDClassifier.partial_fit`;
  each chunk is loaded on a worker, and only the model travels between
  tasks, never the whole data set.
- The fitted wrapper predicts chunk by chunk, in parallel, returning a dask
  array (this is :class:`dask_ml.wrappers.ParallelPostFit`'s behaviour,
  which ``Incremental`` inherits).
- Hyper-parameter search runs on the cluster through joblib's ``dask``
  backend.

This example needs ``pip install "skgd[dask]"``. It starts a small local
cluster; to use a real one, pass its scheduler's address to
:class:`dask.distributed.Client` instead.
"""

# %%
# A cluster and a chunked data set
# --------------------------------
# The local cluster here runs its two workers as threads of this process,
# which keeps the example light; ``LocalCluster(processes=True)`` or a
# remote cluster work the same way.

import functools

import dask
import dask.array as da
import joblib
import matplotlib.pyplot as plt
import numpy as np
from dask.distributed import Client, LocalCluster
from dask_ml.wrappers import Incremental
from sklearn.model_selection import GridSearchCV

from skgd import MinibatchSGDClassifier
from skgd.datasets import load_adult

cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                       dashboard_address=":0")
client = Client(cluster)

# %%
# The data stays on the workers: each chunk of the dask array is a task that
# reads its rows there (on a real cluster, from shared storage: Parquet,
# Zarr, ...). Only the small task graph leaves this process. Here a reader
# slices the bundled UCI Adult data (:func:`skgd.datasets.load_adult`) into
# dense chunks of 4,096 rows; each chunk becomes one ``partial_fit`` call.

CHUNK = 4096
X_train, y_train, X_test, y_test = load_adult()
n_features = X_train.shape[1]


@functools.cache
def _adult():
    return load_adult()


def read_rows(part, start):
    """Rows ``start:start + CHUNK`` of part 0 (X_train), 1 (y_train) or 2 (X_test)."""
    block = _adult()[part][start:start + CHUNK]
    return block.toarray() if part != 1 else block


def dask_array(part, n_rows):
    blocks = []
    for start in range(0, n_rows, CHUNK):
        rows = min(CHUNK, n_rows - start)
        shape, dtype = ((rows, n_features), np.float64) if part != 1 else ((rows,), np.int64)
        blocks.append(da.from_delayed(dask.delayed(read_rows)(part, start), shape, dtype))
    return da.concatenate(blocks)


X = dask_array(0, X_train.shape[0])
y = dask_array(1, X_train.shape[0])
X_holdout = dask_array(2, X_test.shape[0])
print(X)

# %%
# Incremental training, one epoch per call
# ----------------------------------------
# ``Incremental.fit`` makes one pass over the chunks; each further
# ``partial_fit`` makes another, continuing from the same model. The
# ``classes`` argument is passed through to the estimator.
# ``shuffle_blocks=False`` visits the chunks in order; the estimator still
# shuffles the rows inside each chunk.

model = Incremental(
    MinibatchSGDClassifier(loss="log_loss", alpha=1e-5, random_state=0),
    shuffle_blocks=False,
)
classes = np.unique(y_train)
accuracy = []
for epoch in range(5):
    if epoch == 0:
        model.fit(X, y, classes=classes)
    else:
        model.partial_fit(X, y, classes=classes)
    # predict on the dask array: one task per chunk, run on the workers
    y_pred = model.predict(X_holdout)
    accuracy.append(float((y_pred.compute() == y_test).mean()))
    print(f"pass {epoch + 1}: held-out accuracy {accuracy[-1]:.4f}")

# %%
# The same model as plain ``partial_fit``
# ---------------------------------------
# The wrapper adds no magic: calling ``partial_fit`` on the same chunks in
# the same order, in this process, gives the same weights.

local = MinibatchSGDClassifier(loss="log_loss", alpha=1e-5, random_state=0)
for _ in range(5):
    for start in range(0, X_train.shape[0], CHUNK):
        rows = slice(start, start + CHUNK)
        local.partial_fit(X_train[rows].toarray(), y_train[rows], classes=classes)
print("largest weight difference:",
      np.abs(local.coef_ - model.estimator_.coef_).max())

# %%
# Grid search on the cluster
# --------------------------
# Inside ``joblib.parallel_backend("dask")`` scikit-learn's own
# ``GridSearchCV`` sends its fits to the workers.

search = GridSearchCV(
    MinibatchSGDClassifier(loss="log_loss", max_iter=10, tol=None,
                           random_state=0),
    {"alpha": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]},
    cv=3,
    n_jobs=-1,
)
with joblib.parallel_backend("dask"):
    search.fit(X_train[:10000], y_train[:10000])
print("best parameters:", search.best_params_)

client.close()
cluster.close()

# %%
# Results
# -------

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
ax1.plot(range(1, len(accuracy) + 1), accuracy, marker="o")
ax1.set_xlabel("passes over the dask array")
ax1.set_ylabel("held-out accuracy")
ax1.set_title("Incremental(MinibatchSGDClassifier)")
ax1.set_xticks(range(1, len(accuracy) + 1))
alphas = [params["alpha"] for params in search.cv_results_["params"]]
ax2.semilogx(alphas, search.cv_results_["mean_test_score"], marker="o")
ax2.set_xlabel("alpha")
ax2.set_ylabel("mean cross-validated accuracy")
ax2.set_title("GridSearchCV on the dask backend")
fig.tight_layout()
plt.show()
