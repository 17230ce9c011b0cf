import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_svmlight_file

SHARED_DATA = Path(
    os.environ.get("SKGD_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


def in_ci():
    """Whether the tests run in CI (``CI=true``, as ``.ci/run`` and the usual
    CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _load(name):
    """Load a real data set; without the data folder, skip locally but fail
    in CI, where a green run that tested nothing real would mislead."""
    if not SHARED_DATA.is_dir():
        message = f"real data folder {SHARED_DATA} is absent (set SKGD_SHARED_DATA)"
        if in_ci():
            pytest.fail(f"{message}: CI must run the tests that need it", pytrace=False)
        pytest.skip(message)
    return load_svmlight_file(str(SHARED_DATA / name))


def as_int32_csr(X):
    """scikit-learn's SGD accepts only int32 sparse indices."""
    X = X.copy()
    X.indices = X.indices.astype(np.int32)
    X.indptr = X.indptr.astype(np.int32)
    return X


@pytest.fixture(scope="session")
def adult():
    X, y = _load("adult.trn.bz2")
    Xt, yt = load_svmlight_file(str(SHARED_DATA / "adult.tst.bz2"), n_features=X.shape[1])
    return X, y, Xt, yt


@pytest.fixture(scope="session")
def reuters():
    X, y = _load("reuters.trn.bz2")
    Xt, yt = load_svmlight_file(str(SHARED_DATA / "reuters.tst.bz2"), n_features=X.shape[1])
    return X, y, Xt, yt


@pytest.fixture(scope="session")
def abalone():
    X, y = _load("abalone.trn.bz2")
    return X.toarray(), y


@pytest.fixture(scope="module")
def client():
    """A Dask client on a LocalCluster of two single-threaded worker
    processes, one per test module (the Dask tests skip without the extra)."""
    distributed = pytest.importorskip(
        "dask.distributed", reason='needs the extra "skgd[dask]" (dask[distributed])')
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture
def sklearn_validation_rule(monkeypatch):
    """Early stopping as scikit-learn runs it, where skgd differs on purpose
    (user guide, "Stopping"): the validation set scored with the weights
    *without* their lazy L2 scale (scikit-learn's ``weights.base``), and the
    last epoch's model published, not the best one's. The rule itself is
    untouched: with these two, unshuffled runs at ``batch_size=1`` give
    ``SGDClassifier``'s models."""
    from skgd import MinibatchSGDClassifier, _engine, _stopping

    def unscaled_scores(self, state, X, averaged=None):
        return _engine._dot(X, state.coef) + state.intercept

    monkeypatch.setattr(MinibatchSGDClassifier, "_state_scores", unscaled_scores)
    monkeypatch.setattr(_stopping.BestEpoch, "see", lambda *args: None)


# The tests that take longest with an empty compile cache (they compile in
# fresh processes, build the docs, or compile threaded passes) run first:
# with ``-n 2`` the two workers then share them, instead of one worker ending
# the run alone on a minute-long test. (Collection order only; each test is
# independent of the others.)
_LONG_FIRST = (
    "tests/test_docs.py::test_docs_build",
    "tests/test_reliability.py::test_property",
    "tests/test_cache_stamp.py::test_editing",
    "tests/test_install.py",
    "tests/test_cache_loading.py::test_a_warm",
    "tests/test_reliability_edges.py::test_corrupted",
    "tests/test_batch_threads.py",
)


def _rank(item):
    """The item's place in ``_LONG_FIRST`` (the longest first); after them, the rest."""
    return next((i for i, prefix in enumerate(_LONG_FIRST) if item.nodeid.startswith(prefix)),
                len(_LONG_FIRST))


def pytest_collection_modifyitems(items):
    items.sort(key=_rank)  # (a stable sort: collection order within each rank)
