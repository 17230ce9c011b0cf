"""skgd on a real Dask cluster (two worker processes).

- ``dask_ml.wrappers.Incremental`` over the chunks of a dask array gives the
  model that ``partial_fit`` on the same chunks, in the same order, gives;
  predictions on dask arrays match the in-memory ones.
- ``GridSearchCV`` under joblib's dask backend finds what it finds locally.
"""

import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import GridSearchCV

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor

_REASON = 'needs the extra "skgd[dask]" (dask[distributed] and dask-ml)'
da = pytest.importorskip("dask.array", reason=_REASON)
distributed = pytest.importorskip("dask.distributed", reason=_REASON)
wrappers = pytest.importorskip("dask_ml.wrappers", reason=_REASON)
joblib = pytest.importorskip("joblib")

CHUNK = 500
N = 2300  # the last chunk is shorter


def _blocks(n, size):
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def _ran_on_workers(client, records, prefix):
    """Names of the workers that ran tasks whose key starts with ``prefix``."""
    workers = set(client.scheduler_info()["workers"])
    ran = set()
    for rec in records:
        key = rec["key"]
        name = key[0] if isinstance(key, tuple) else key
        if str(name).startswith(prefix):
            assert rec["worker"] in workers
            ran.add(rec["worker"])
    return ran


def test_incremental_equals_partial_fit_on_the_same_chunks(client):
    X, y = make_classification(n_samples=N, n_features=20, n_informative=6,
                               n_classes=3, random_state=0)
    classes = np.unique(y)
    Xd = da.from_array(X, chunks=(CHUNK, X.shape[1]))
    yd = da.from_array(y, chunks=CHUNK)
    assert Xd.numblocks == (5, 1)

    def make():
        # shuffle=True (the default): rows are shuffled inside each chunk by
        # the RNG carried in the model, so that state must travel with it.
        return MinibatchSGDClassifier(loss="log_loss", batch_size=16, random_state=0)

    # shuffle_blocks=False: the chunks in array order (the default shuffles them)
    inc = wrappers.Incremental(make(), shuffle_blocks=False)
    with distributed.get_task_stream(client) as stream:
        inc.fit(Xd, yd, classes=classes)
    # the partial_fit tasks really ran on the cluster's workers
    assert _ran_on_workers(client, stream.data, "fit-")

    ref = make()
    for rows in _blocks(N, CHUNK):
        ref.partial_fit(X[rows], y[rows], classes=classes)
    model = inc.estimator_
    assert model is not ref
    assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-12)
    assert_allclose(model.intercept_, ref.intercept_, rtol=0, atol=1e-12)
    assert model.t_ == ref.t_ == N + 1
    assert_allclose(model.loss_curve_, ref.loss_curve_, rtol=1e-12)
    assert np.abs(ref.coef_).max() > 0.1  # it learnt something

    # a second pass continues the same run on both sides
    inc.partial_fit(Xd, yd)
    for rows in _blocks(N, CHUNK):
        ref.partial_fit(X[rows], y[rows])
    assert_allclose(inc.estimator_.coef_, ref.coef_, rtol=0, atol=1e-12)
    assert_allclose(inc.estimator_.intercept_, ref.intercept_, rtol=0, atol=1e-12)
    assert inc.estimator_.t_ == 2 * N + 1

    # prediction chunk by chunk on the workers, as ParallelPostFit does
    pred = inc.predict(Xd)
    assert isinstance(pred, da.Array)
    assert_array_equal(pred.compute(), ref.predict(X))
    post = wrappers.ParallelPostFit(ref)
    proba = post.predict_proba(Xd)
    assert isinstance(proba, da.Array)
    assert_allclose(proba.compute(), ref.predict_proba(X), rtol=0, atol=1e-12)
    assert post.score(Xd, yd) == pytest.approx(ref.score(X, y))
    assert ref.score(X, y) > 0.5  # well above chance (1/3)


def test_incremental_regressor_equals_partial_fit(client):
    X, y = make_regression(n_samples=N, n_features=10, noise=1.0, random_state=0)
    Xd = da.from_array(X, chunks=(CHUNK, X.shape[1]))
    yd = da.from_array(y, chunks=CHUNK)

    def make():
        return MinibatchSGDRegressor(batch_size=8, random_state=0)

    inc = wrappers.Incremental(make(), shuffle_blocks=False).fit(Xd, yd)
    ref = make()
    for rows in _blocks(N, CHUNK):
        ref.partial_fit(X[rows], y[rows])
    assert_allclose(inc.estimator_.coef_, ref.coef_, rtol=0, atol=1e-12)
    assert_allclose(inc.estimator_.intercept_, ref.intercept_, rtol=0, atol=1e-12)
    assert_allclose(inc.predict(Xd).compute(), ref.predict(X), rtol=1e-12)


def test_grid_search_on_the_dask_backend_matches_local(client):
    X, y = make_classification(n_samples=600, n_features=20, n_informative=5,
                               random_state=0)
    grid = {"alpha": [1e-4, 1e-2, 1.0], "batch_size": [8, 64]}

    def search():
        est = MinibatchSGDClassifier(loss="log_loss", max_iter=20, tol=None, random_state=0)
        return GridSearchCV(est, grid, cv=3, n_jobs=-1)

    local = search()
    with joblib.parallel_backend("sequential"):
        local.fit(X, y)
    remote = search()
    with distributed.get_task_stream(client) as stream:
        with joblib.parallel_backend("dask"):
            remote.fit(X, y)
    # the fits ran on the workers (joblib's dask backend submits batches)
    assert {rec["worker"] for rec in stream.data} <= set(client.scheduler_info()["workers"])
    assert len(stream.data) > 0
    assert any(client.run(lambda: "skgd" in sys.modules).values())

    assert remote.best_params_ == local.best_params_
    assert_allclose(remote.cv_results_["mean_test_score"],
                    local.cv_results_["mean_test_score"], rtol=0, atol=1e-12)
    # the grid is not flat: the search had something to choose
    assert np.ptp(local.cv_results_["mean_test_score"]) > 0.01
