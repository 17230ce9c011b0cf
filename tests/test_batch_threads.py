"""``n_jobs`` on a binary or multinomial model (or a one-vs-rest pass too
short to split its classes): a long batch's row scores and losses are
computed on numba's threads, and the model is the one of ``n_jobs=1``, bit
for bit (issue 26, item 2).

The data sets here are small, so the work below which a batch stays on one
thread (``skgd._threads.MIN_BATCH_WORK_*``) is lowered to split every batch
of two rows or more; a spy counts the passes that did, so that no test
passes by running on one thread. No test looks at the clock.
"""

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
from custom_losses import UserLog, WrongSoftmax
from sklearn.datasets import load_digits
from test_n_jobs import _assert_same, _assert_unchanged, _error, _snapshot
from test_reliability_edges import RaisesPastHalf  # its derivative raises past |p| = 0.5

from skgd import MinibatchSGDClassifier, _engine, _threads


@pytest.fixture(scope="module")
def binary():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, (y > 4).astype(int)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture
def threaded_runs(monkeypatch):
    """Split every batch of two rows or more, and record how many threads
    each pass prepared uses."""
    monkeypatch.setattr(_threads, "MIN_BATCH_WORK_DENSE", 1)
    monkeypatch.setattr(_threads, "MIN_BATCH_WORK_SPARSE", 1)
    runs = []
    batch_threads = _threads.batch_threads

    def counted(*args):
        runs.append(batch_threads(*args))
        return runs[-1]

    monkeypatch.setattr(_threads, "batch_threads", counted)
    return runs


CONFIGS = {
    "batch8": {"batch_size": 8},
    "batch64-log": {"batch_size": 64, "loss": "log_loss"},
    "average": {"average": True, "batch_size": 4},
    "average-later": {"average": 300, "batch_size": 16},
    "l1": {"penalty": "l1", "alpha": 1e-3, "batch_size": 16},
    "elasticnet-average": {"penalty": "elasticnet", "average": True, "batch_size": 8},
    "class_weight": {"class_weight": "balanced", "batch_size": 8, "loss": "log_loss"},
    "sample_weight": {"batch_size": 32},
    "early_stopping": {"early_stopping": True, "n_iter_no_change": 3, "batch_size": 16},
    "adaptive": {"learning_rate": "adaptive", "eta0": 0.05, "batch_size": 4},
    "user_loss": {"loss": UserLog(), "batch_size": 16},
    "per_sample": {"batch_size": 1},  # (one row a step: never split)
}


# Each loss and layout compiles a threaded pass of its own (seconds each, in
# a fresh environment): the options the compiled pass takes at run time
# (averaging, L1, weights, schedules) are tried on both layouts, a user's loss
# on dense rows only.
def _cases(configs, dense_only):
    return [pytest.param(config, sparse, id=f"{config}-{'csr' if sparse else 'dense'}")
            for config in configs for sparse in (False, True)
            if not (sparse and config in dense_only)]


@pytest.mark.parametrize(("config", "sparse"), _cases(CONFIGS, {"user_loss"}))
def test_binary_model_does_not_depend_on_n_jobs(binary, threaded_runs, config, sparse):
    X, y = binary
    X = sp.csr_matrix(X) if sparse else X
    params = dict(random_state=0, max_iter=12, **CONFIGS[config])
    fit_params = {}
    if config == "sample_weight":
        fit_params["sample_weight"] = np.random.RandomState(0).rand(X.shape[0]) * 2
    base = MinibatchSGDClassifier(n_jobs=1, **params).fit(X, y, **fit_params)
    assert set(threaded_runs) <= {1}
    for n_jobs in (2, -1):
        est = MinibatchSGDClassifier(n_jobs=n_jobs, **params).fit(X, y, **fit_params)
        _assert_same(est, base)
    if config == "per_sample":
        assert set(threaded_runs) == {1}
    else:
        assert max(threaded_runs) >= 2


# (multiclass hinge by default; softmax once: its derivative sums in order
# wherever the pass's buffers lie, see skgd.losses._dsoftmax_loss)
MULTI_CONFIGS = {  # (each a rule of its own: a compiled pass of its own)
    "log_loss": {"loss": "log_loss", "batch_size": 16},
    "average-l1": {"average": True, "penalty": "l1", "alpha": 1e-3, "batch_size": 8},
    "class_weight-early_stopping": {"class_weight": "balanced", "early_stopping": True,
                                    "batch_size": 16},
    "momentum-clip_value": {"momentum": 0.5, "clip_value": 1.0, "batch_size": 16},
    "user_loss": {"loss": WrongSoftmax(), "batch_size": 16},
    "one-vs-rest": {"multi_class": "ovr", "batch_size": 16},  # too short to split its classes
}


@pytest.mark.parametrize(("config", "sparse"),
                         _cases(MULTI_CONFIGS, {"user_loss", "one-vs-rest", "log_loss"}))
def test_multiclass_model_does_not_depend_on_n_jobs(digits, threaded_runs, monkeypatch, config,
                                                    sparse):
    X, y = digits
    X = sp.csr_matrix(X) if sparse else X
    monkeypatch.setattr(_threads, "MIN_PART_WORK", 1 << 60)  # no one-vs-rest split
    params = dict(random_state=0, max_iter=8, multi_class="multinomial", loss="hinge")
    params.update(MULTI_CONFIGS[config])
    base = MinibatchSGDClassifier(n_jobs=1, **params).fit(X, y)
    for n_jobs in (2, -1):
        est = MinibatchSGDClassifier(n_jobs=n_jobs, **params).fit(X, y)
        _assert_same(est, base)
    assert max(threaded_runs) >= 2


def test_auto_rate_stays_on_one_thread(digits, threaded_runs, monkeypatch):
    """'auto' sums the batch's squared gradients in the per-row loop."""
    X, y = digits
    threads = []
    run = _engine.Pass.run

    def counted(self):
        threads.append(self.threads)
        return run(self)

    monkeypatch.setattr(_engine.Pass, "run", counted)
    params = dict(random_state=0, max_iter=4, multi_class="multinomial", batch_size=16,
                  learning_rate="auto")
    base = MinibatchSGDClassifier(**params).fit(X, y)
    est = MinibatchSGDClassifier(n_jobs=2, **params).fit(X, y)
    _assert_same(est, base)
    assert threads and set(threads) == {1}


def test_partial_fit_stream_does_not_depend_on_n_jobs(binary, threaded_runs):
    X, y = binary
    chunks = np.array_split(np.arange(X.shape[0]), 5)
    models = []
    for n_jobs in (1, 2):
        est = MinibatchSGDClassifier(random_state=0, average=True, batch_size=8, n_jobs=n_jobs)
        for rows in chunks:
            est.partial_fit(X[rows], y[rows], classes=[0, 1])
        models.append(est)
    assert max(threaded_runs) == 2
    _assert_same(models[1], models[0])


def test_short_batches_and_unsafe_threading_layers_stay_sequential(binary, monkeypatch):
    """Below the work of MIN_BATCH_WORK_*, or when numba's threading layer
    is 'workqueue' (which aborts the process when two Python threads enter
    it at once), a pass runs the sequential code."""
    X, _ = binary
    Xs = sp.csr_matrix(X)
    rows = np.arange(X.shape[0])
    d, nnz = X.shape[1], Xs.nnz / X.shape[0]
    monkeypatch.setattr(_threads, "MIN_BATCH_WORK_DENSE", 64 * d)
    monkeypatch.setattr(_threads, "MIN_BATCH_WORK_SPARSE", 64 * nnz)
    assert _threads.batch_threads(X, rows, 63, 2) == 1
    assert _threads.batch_threads(X, rows, 64, 1) == 1
    assert _threads.batch_threads(Xs, rows, 63, 2) == 1
    if _threads._thread_safe_layer():
        assert _threads.batch_threads(X, rows, 64, 2) == 2
        assert _threads.batch_threads(Xs, rows, 64, 2) == 2
        assert _threads.batch_threads(X, rows[:10], 64, 2) == 1  # batches of 10 rows at most
    monkeypatch.setattr(_threads, "_layer", [False])
    assert _threads.batch_threads(X, rows, 64, 2) == 1


def test_two_models_trained_at_once_are_those_trained_one_after_the_other(binary,
                                                                         threaded_runs):
    """Two fits from two Python threads at once, each splitting its batches
    on numba's threads, give the models of the same fits one after the other."""
    X, y = binary
    Xs = sp.csr_matrix(X)
    jobs = [(dict(random_state=0, average=True, batch_size=16), X),
            (dict(random_state=1, penalty="l1", loss="log_loss", batch_size=32), Xs),
            (dict(random_state=2, early_stopping=True, class_weight="balanced",
                  batch_size=8), X),
            (dict(random_state=3, loss=UserLog(), batch_size=64), Xs)]

    def fit(job):
        params, data = job
        return MinibatchSGDClassifier(max_iter=10, n_jobs=2, **params).fit(data, y)

    alone = [fit(job) for job in jobs]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(fit, jobs))
    assert max(threaded_runs) == 2
    for a, b in zip(alone, together, strict=True):
        _assert_same(b, a)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("call", ["fit", "partial_fit"])
def test_a_user_loss_raising_on_a_thread_reaches_the_caller(binary, threaded_runs, call,
                                                            sparse):
    """The user's own exception, raised on one of numba's threads inside a
    long batch, reaches the caller with the score and target of the row
    where the sequential pass met it first; the estimator as it was."""
    X, y = binary
    X = 10 * X  # (scores past 0.5 within one partial_fit of capped steps)
    X = sp.csr_matrix(X) if sparse else X
    errors = []
    for n_jobs in (1, 2):
        est = MinibatchSGDClassifier(random_state=0, n_jobs=n_jobs, max_iter=5, tol=None,
                                     learning_rate="constant", eta0=0.05, batch_size=256)
        if call == "partial_fit":
            est.partial_fit(X[:20], y[:20], classes=[0, 1])  # before the loss raises
        est.set_params(loss=RaisesPastHalf())
        before = _snapshot(est)
        if call == "partial_fit":
            error = _error(lambda est=est: est.partial_fit(X, y))
        else:
            error = _error(lambda est=est: est.fit(X, y))
        _assert_unchanged(est, before)
        errors.append(error)
    if not (sparse and call == "partial_fit"):  # (a CSR stream runs the journaling pass)
        assert max(threaded_runs) == 2
    for error in errors:
        assert type(error) is ValueError and str(error) == "bad value"
        assert error.__notes__ == errors[0].__notes__  # where it was raised


# a threaded fit in a new process; counts numba's registry refreshes during it
FIT = textwrap.dedent("""
    import json
    import numpy as np
    from numba.core import base
    from skgd import MinibatchSGDClassifier, _threads

    _threads.MIN_BATCH_WORK_DENSE = 0
    refreshes = []
    original = base.BaseContext.refresh

    def counted(self):
        refreshes.append(type(self).__name__)
        return original(self)

    base.BaseContext.refresh = counted
    rng = np.random.RandomState(0)
    X = rng.randn(200, 5)
    y = (X[:, 0] + 0.3 * rng.randn(200) > 0).astype(int)
    clf = MinibatchSGDClassifier(random_state=0, max_iter=5, tol=None, batch_size=32,
                                 n_jobs=2).fit(X, y)
    print(json.dumps({"coef": clf.coef_.ravel().tolist() + clf.intercept_.tolist(),
                      "refreshes": len(refreshes), "threads": _threads._layer}))
""")


def test_a_warm_cache_loads_the_threaded_pass_in_a_new_process(tmp_path):
    """The threaded pass (a numba parallel function inside) loads from the
    cache as the others do, without numba's registry refresh, starts the
    threading layer and trains the model of the process that compiled it.
    SLOW: the first fit compiles the pass into an empty cache."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["NUMBA_CACHE_DIR"] = str(tmp_path)
    runs = [json.loads(subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True,
                                      text=True, check=True).stdout.strip().splitlines()[-1])
            for _ in range(2)]
    compiled, loaded = runs
    assert loaded["refreshes"] == 0
    assert loaded["coef"] == compiled["coef"]
    assert loaded["threads"] == compiled["threads"]
