"""skgd.dask.DataParallel on a real Dask cluster (two worker processes).

- On one worker, a fit equals ``fit`` on the concatenated blocks (same
  passes, same order, same stopping decisions), for every kind of model,
  dense and CSR, with and without averaging, L1, momentum, weights.
- On two workers (parameter mixing), accuracy is within 0.005 of a single
  process's; L1 gives exact zeros; predictions work on dask and in-memory
  input; a killed worker ends in a result or a clear error.
"""

import os
import pickle
import signal
import threading
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from parallel_configs import CONFIGS, classification, make_data, regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor

_REASON = 'needs the extra "skgd[dask]" (dask[distributed])'
da = pytest.importorskip("dask.array", reason=_REASON)
distributed = pytest.importorskip("dask.distributed", reason=_REASON)
from skgd.dask import DataParallel  # noqa: E402  (after the skip)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CHUNK = 1000


def _workers(client):
    return sorted(client.scheduler_info()["workers"])


def _dask(X, y, sw=None, chunk=CHUNK):
    """Dask arrays of X (dense or CSR blocks), y and the weights."""
    if sp.issparse(X):
        dense = da.from_array(X.toarray(), chunks=(chunk, X.shape[1]))
        Xd = dense.map_blocks(sp.csr_matrix, dtype=X.dtype,
                              meta=sp.csr_matrix((0, 0), dtype=X.dtype))
    else:
        Xd = da.from_array(X, chunks=(chunk, X.shape[1]))
    yd = da.from_array(y, chunks=chunk)
    return (Xd, yd) if sw is None else (Xd, yd, da.from_array(sw, chunks=chunk))


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_one_worker_equals_fit(client, name, sparse):
    make, n_classes = CONFIGS[name]
    X, y = make_data(n_classes, sparse)
    sw = np.random.RandomState(0).uniform(0.5, 2.0, X.shape[0])
    ref = make().set_params(max_iter=15).fit(X, y, sample_weight=sw)
    model = DataParallel(make().set_params(max_iter=15), workers=_workers(client)[:1])
    model.fit(*_dask(X, y), sample_weight=da.from_array(sw, chunks=CHUNK))
    got = model.estimator_
    assert list(model.worker_rows_.values()) == [X.shape[0]]
    assert got.n_iter_ == ref.n_iter_ and got.t_ == ref.t_
    assert_allclose(got.coef_, ref.coef_, rtol=0, atol=1e-12)
    assert_allclose(got.intercept_, ref.intercept_, rtol=0, atol=1e-12)
    assert_allclose(got.loss_curve_, ref.loss_curve_, rtol=1e-12, atol=0)


def _score(est, X, y):
    return est.score(X, y)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("kind", ["binary", "ovr", "multinomial", "regressor"])
def test_two_workers_score_as_one_process(client, kind, sparse):
    n_classes = {"binary": 2, "ovr": 3, "multinomial": 3, "regressor": None}[kind]
    # a large test half: 0.005 is 40 rows of it
    X, y = make_data(n_classes, sparse, n=16000)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.5, random_state=0)
    if n_classes is None:
        make = lambda: MinibatchSGDRegressor(batch_size=16, average=True, random_state=0)  # noqa: E731
    else:
        make = lambda: MinibatchSGDClassifier(  # noqa: E731
            loss="log_loss", batch_size=16, average=True, random_state=0,
            multi_class="multinomial" if kind == "multinomial" else "ovr")
    ref = make().fit(Xtr, ytr)
    model = DataParallel(make()).fit(*_dask(Xtr, ytr))
    assert len(model.worker_rows_) == 2  # both workers trained
    assert model.n_mixes_ == model.n_iter_
    assert abs(model.score(Xte, yte) - ref.score(Xte, yte)) <= 0.005


def test_l1_gives_exact_zeros_after_mixing(client):
    X, y = classification(2, sparse=False, n=6000)
    X = np.hstack([X, np.random.RandomState(1).randn(X.shape[0], 20)])  # noise features
    make = lambda: MinibatchSGDClassifier(  # noqa: E731
        loss="log_loss", penalty="l1", alpha=1e-3, batch_size=16, random_state=0)
    ref = make().fit(X, y)
    model = DataParallel(make()).fit(*_dask(X, y))
    zeros = int((model.estimator_.coef_ == 0).sum())
    assert zeros >= 10, zeros
    assert abs(zeros - int((ref.coef_ == 0).sum())) <= 8
    assert abs(model.score(X, y) - ref.score(X, y)) <= 0.005


def test_mix_every_two_epochs(client):
    X, y = classification(3, sparse=False, n=6000)
    make = lambda: MinibatchSGDClassifier(  # noqa: E731
        loss="log_loss", batch_size=16, average=True, max_iter=7, tol=None, random_state=0)
    model = DataParallel(make(), mix_every=2).fit(*_dask(X, y))
    assert model.n_iter_ == 7 and model.n_mixes_ == 4  # 3 rounds of 2 epochs, then 1
    assert model.estimator_.t_ == 7 * X.shape[0] + 1
    assert abs(model.score(X, y) - make().fit(X, y).score(X, y)) <= 0.01


def test_predictions_on_dask_and_in_memory_input(client):
    X, y = classification(3, sparse=False)
    Xd, yd = _dask(X, y)
    model = DataParallel(MinibatchSGDClassifier(loss="log_loss", batch_size=16,
                                                random_state=0, max_iter=5)).fit(Xd, yd)
    est = model.estimator_
    for method in ("predict", "predict_proba", "decision_function"):
        lazy = getattr(model, method)(Xd)
        assert isinstance(lazy, da.Array)
        assert_allclose(lazy.compute(), getattr(est, method)(X))
        assert_array_equal(getattr(model, method)(X), getattr(est, method)(X))
    assert model.score(Xd, yd) == pytest.approx(est.score(X, y), abs=1e-12)
    assert model.score(X, y) == est.score(X, y)
    assert_array_equal(model.classes_, np.unique(y))

    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    frame = dd.from_pandas(pd.DataFrame(X, columns=[f"f{i}" for i in range(20)]),
                           npartitions=3)
    labels = dd.from_pandas(pd.Series(y), npartitions=3)
    on_frames = DataParallel(MinibatchSGDClassifier(loss="log_loss", batch_size=16,
                                                    random_state=0, max_iter=5))
    assert on_frames.fit(frame, labels).predict(frame).compute().shape == y.shape


def test_regressor_predictions_and_r2(client):
    X, y = regression(sparse=False)
    Xd, yd = _dask(X, y)
    model = DataParallel(MinibatchSGDRegressor(batch_size=16, random_state=0)).fit(Xd, yd)
    assert_allclose(model.predict(Xd).compute(), model.estimator_.predict(X))
    assert model.score(Xd, yd) == pytest.approx(model.estimator_.score(X, y), abs=1e-10)


def test_fitted_estimator_is_ordinary(client):
    X, y = classification(2, sparse=False)
    model = DataParallel(MinibatchSGDClassifier(batch_size=16, random_state=0, max_iter=5))
    est = model.fit(*_dask(X, y)).estimator_
    again = pickle.loads(pickle.dumps(est))
    assert_array_equal(again.predict(X), est.predict(X))
    t = est.t_
    est.partial_fit(X[:100], y[:100])
    assert est.t_ == t + 100
    pickle.loads(pickle.dumps(model))  # the wrapper pickles too


def test_refusals(client):
    X, y = classification(2, sparse=False, n=500)
    with pytest.raises(ValueError, match="early_stopping"):
        DataParallel(MinibatchSGDClassifier(early_stopping=True)).fit(*_dask(X, y))
    with pytest.raises(TypeError, match="dask arrays"):
        DataParallel(MinibatchSGDClassifier()).fit(X, y)
    with pytest.raises(ValueError, match="labels not in"):
        DataParallel(MinibatchSGDClassifier()).fit(*_dask(X, y), classes=[0, 5])


def test_an_error_on_a_worker_reaches_the_caller(client):
    X, y = classification(2, sparse=False, n=500)
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        DataParallel(MinibatchSGDClassifier(), timeout=60).fit(*_dask(X, y, chunk=250))


def test_a_killed_worker_ends_in_a_result_or_a_clear_error():
    # its own cluster: the kill must not disturb the other tests
    X, y = classification(2, sparse=False, n=20000)
    outcome = {}
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster) as client:
        Xd, yd = _dask(X, y, chunk=5000)
        model = DataParallel(MinibatchSGDClassifier(batch_size=4, max_iter=200, tol=None,
                                                    random_state=0), timeout=60)

        def fit():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model.fit(Xd, yd)
                outcome["result"] = model
            except Exception as exc:  # noqa: BLE001 - what ended the fit is the test
                outcome["error"] = exc

        thread = threading.Thread(target=fit, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                str(k).startswith("skgd-epoch") for k in client.who_has()):
            time.sleep(0.05)  # wait until the rounds run
        victim = _workers(client)[-1]
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)  # its nanny starts a new worker
        thread.join(timeout=180)
        assert not thread.is_alive(), "the fit hung after a worker was killed"
    if "error" in outcome:
        err = outcome["error"]
        assert isinstance(err, (RuntimeError, TimeoutError)), repr(err)
        assert "DataParallel.fit" in str(err)
    else:
        assert outcome["result"].n_iter_ == 200


def test_many_mixes_keep_the_averaging_check_finite():
    # The clock's AVG_CHECK (the changes to the averaging sums, read only to
    # detect overflow) must add the workers' changes since the round's start:
    # summing their totals doubled it every round on two workers, and after
    # about 1000 rounds (average=True, tol=None) a sound fit raised
    # "Floating-point under-/overflow".
    from skgd import _kernels as K
    from skgd._training import Trainer

    est = MinibatchSGDClassifier(average=True)
    est._check_params()
    trainer = Trainer(est)
    state = trainer.new_state(1, 3, np.float64, for_fit=True)
    state.conform(trainer.plan().rule)
    state.clock[K.AVG_CHECK] = 1.0
    for _ in range(1100):
        workers = [state.copy(), state.copy()]
        workers[0].clock[K.AVG_CHECK] += 0.5
        workers[1].clock[K.AVG_CHECK] += 0.25
        state.mix(workers, np.array([10, 30]))
    assert state.clock[K.AVG_CHECK] == pytest.approx(1.0 + 1100 * 0.75)
    assert state.is_finite()


def test_warm_start_refit_takes_the_new_parameters(client):
    # With warm_start=True a refit continues from estimator_'s weights but
    # with the parameters of `estimator` as they are now (set_params after a
    # fit, as for the estimator's own fit); it used to run estimator_'s old ones.
    X, y = classification(2, sparse=False, n=2000)
    make = lambda: MinibatchSGDClassifier(  # noqa: E731
        warm_start=True, max_iter=3, tol=None, batch_size=16, random_state=0)
    ref = make().fit(X, y)
    model = DataParallel(make(), workers=_workers(client)[:1]).fit(*_dask(X, y))
    ref.set_params(max_iter=1, alpha=1e-3)
    model.set_params(estimator__max_iter=1, estimator__alpha=1e-3)
    ref.fit(X, y)
    model.fit(*_dask(X, y))
    assert model.n_iter_ == 1 and model.estimator_.alpha == 1e-3
    assert model.estimator_.t_ == ref.t_
    assert_allclose(model.estimator_.coef_, ref.coef_, rtol=0, atol=1e-12)


def test_a_worker_whose_rows_all_weigh_zero(client):
    # sample_weight as a mask (only the first block counts): a plain fit
    # trains, so must DataParallel, though a worker's rows all weigh zero
    # (it raised "sample_weight is zero for every sample" from that worker).
    X, y = classification(2, sparse=False, n=4000)
    sw = np.zeros(X.shape[0])
    sw[:CHUNK] = 1.0
    make = lambda: MinibatchSGDClassifier(  # noqa: E731
        loss="log_loss", batch_size=16, max_iter=5, tol=None, random_state=0)
    Xd, yd, swd = _dask(X, y, sw)
    model = DataParallel(make()).fit(Xd, yd, sample_weight=swd)
    assert len(model.worker_rows_) == 2 and sum(model.worker_rows_.values()) == X.shape[0]
    assert np.isfinite(model.estimator_.loss_curve_).all()
    ref = make().fit(X, y, sample_weight=sw)
    assert abs(model.score(X, y) - ref.score(X, y)) <= 0.02
    with pytest.raises(ValueError, match="zero for every sample"):
        DataParallel(make()).fit(Xd, yd, sample_weight=swd * 0)
