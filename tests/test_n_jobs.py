"""``n_jobs``: one-vs-rest classes split across threads give the model of
one thread, bit for bit; everything else keeps its sequential algorithm.

The data sets here are small, so the threshold of work below which a pass
stays whole (``skgd._threads.MIN_PART_WORK``) is lowered to split every
pass; a spy counts the passes that did split, so that no test passes by
running on one thread. No test looks at the clock.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import GridSearchCV
from test_reliability_edges import RaisesPastHalf  # its derivative raises past |p| = 0.5

import skgd
from skgd import (
    MinibatchSGDClassifier,
    MinibatchSGDRegressor,
    _engine,
    _stopping,
    _threads,
    _training,
)
from skgd import _kernels as K

_STATE_ARRAYS = ("coef", "intercept", "avg_coef", "avg_intercept", "l1_applied", "velocity",
                 "velocity_b", "norms")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture
def split_runs(monkeypatch):
    """Split every pass that may split, and count the runs that did."""
    monkeypatch.setattr(_threads, "MIN_PART_WORK", 1)
    runs = []
    run = _engine.SplitPass.run

    def counted(self):
        runs.append(len(self.passes))
        return run(self)

    monkeypatch.setattr(_engine.SplitPass, "run", counted)
    return runs


def _model(est):
    """Everything a fitted model is made of, published and internal. The
    clock's AVG_CHECK slot is left out: a sum over the outputs that is only
    ever tested for finiteness, which a split pass adds up in another order
    (see skgd._engine.SplitPass)."""
    state = est._state
    model = {name: getattr(state, name) for name in _STATE_ARRAYS}
    model["clock"] = np.delete(state.clock, K.AVG_CHECK)
    model["eta"] = state.eta
    for name in ("coef_", "intercept_", "n_iter_", "t_", "loss_curve_", "validation_scores_"):
        model[name] = getattr(est, name, None)
    return model


def _assert_same(a, b):
    a, b = _model(a), _model(b)
    for name in a:
        assert np.array_equal(np.asarray(a[name]), np.asarray(b[name])), name


OVR_CONFIGS = {
    "default": {},
    "batch32": {"batch_size": 32},
    "average": {"average": True, "batch_size": 4},
    "l1": {"penalty": "l1", "alpha": 1e-3},
    "elasticnet-log": {"penalty": "elasticnet", "loss": "log_loss", "batch_size": 8},
    "class_weight": {"class_weight": "balanced", "batch_size": 8},
    "early_stopping": {"early_stopping": True, "n_iter_no_change": 3},
    "adaptive": {"learning_rate": "adaptive", "eta0": 0.05, "batch_size": 4},
    "momentum-clip_value": {"momentum": 0.5, "clip_value": 0.5, "batch_size": 16},
    "pa1": {"learning_rate": "pa1", "eta0": 0.1},
}


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("config", list(OVR_CONFIGS))
def test_one_vs_rest_model_does_not_depend_on_n_jobs(digits, split_runs, config, sparse):
    X, y = digits
    X = sp.csr_matrix(X) if sparse else X
    params = dict(random_state=0, max_iter=15, **OVR_CONFIGS[config])
    base = MinibatchSGDClassifier(n_jobs=1, **params).fit(X, y)
    assert not split_runs
    for n_jobs in (2, -1, 5, 10):
        est = MinibatchSGDClassifier(n_jobs=n_jobs, **params).fit(X, y)
        _assert_same(est, base)
    # -1 is every core (2 or more: CI machines), 10 at most 5 parts of two classes
    assert split_runs and max(split_runs) == 5


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_partial_fit_stream_does_not_depend_on_n_jobs(digits, split_runs, sparse):
    X, y = digits
    X = sp.csr_matrix(X) if sparse else X
    chunks = np.array_split(np.arange(X.shape[0]), 6)
    models = []
    for n_jobs in (1, 2, -1):
        est = MinibatchSGDClassifier(random_state=0, average=3, batch_size=4, n_jobs=n_jobs)
        for rows in chunks:
            est.partial_fit(X[rows], y[rows], classes=np.arange(10))
        models.append(est)
    assert len(split_runs) == 2 * len(chunks)
    _assert_same(models[1], models[0])
    _assert_same(models[2], models[0])


def test_n_jobs_none_follows_joblib_parallel_config(digits, split_runs):
    X, y = digits
    base = MinibatchSGDClassifier(random_state=0, max_iter=10, tol=None).fit(X, y)
    assert not split_runs
    with joblib.parallel_config(n_jobs=2):
        est = MinibatchSGDClassifier(random_state=0, max_iter=10, tol=None).fit(X, y)
    assert split_runs == [2] * 10
    _assert_same(est, base)


@pytest.mark.parametrize("config", [
    {"learning_rate": "auto"},
    {"clip_norm": 1.0, "batch_size": 8},
], ids=["auto", "clip_norm"])
def test_steps_that_read_every_class_stay_on_one_thread(digits, split_runs, config):
    """'auto' and clip_norm step by numbers of all the classes at once."""
    X, y = digits
    params = dict(random_state=0, max_iter=5, tol=None, **config)
    base = MinibatchSGDClassifier(**params).fit(X, y)
    est = MinibatchSGDClassifier(n_jobs=2, **params).fit(X, y)
    assert not split_runs
    _assert_same(est, base)


@pytest.mark.parametrize("kind", ["binary", "multinomial", "regressor"])
def test_binary_multinomial_and_regression_do_not_depend_on_n_jobs(digits, split_runs, kind):
    X, y = digits
    if kind == "binary":
        make, y = MinibatchSGDClassifier, (y > 4).astype(int)
    elif kind == "multinomial":
        # (softmax: it once summed in an order that followed where the pass's
        # buffers lay, and fits of one process differed; see skgd.losses)
        make = lambda **kw: MinibatchSGDClassifier(multi_class="multinomial",  # noqa: E731
                                                   loss="log_loss", **kw)
    else:
        make, y = MinibatchSGDRegressor, y.astype(float)
    base = make(random_state=0, max_iter=10, batch_size=8).fit(X, y)
    for n_jobs in (2, -1):
        if kind == "regressor":
            est = make(random_state=0, max_iter=10, batch_size=8).fit(X, y)
        else:
            est = make(random_state=0, max_iter=10, batch_size=8, n_jobs=n_jobs).fit(X, y)
        _assert_same(est, base)
    assert not split_runs


def test_two_models_trained_at_once_are_those_trained_one_after_the_other(digits, split_runs):
    """Two fits from two Python threads at once, each splitting its own
    passes, give the models of the same fits run one after the other."""
    X, y = digits
    Xs = sp.csr_matrix(X)
    jobs = [(dict(random_state=0, average=True, batch_size=4), X),
            (dict(random_state=1, penalty="l1", loss="log_loss"), Xs),
            (dict(random_state=2, early_stopping=True, class_weight="balanced"), X),
            (dict(random_state=3, learning_rate="auto", batch_size=16), Xs)]

    def fit(job):
        params, data = job
        return MinibatchSGDClassifier(max_iter=10, n_jobs=2, **params).fit(data, y)

    alone = [fit(job) for job in jobs]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(fit, jobs))
    for a, b in zip(alone, together, strict=True):
        _assert_same(b, a)


def test_threaded_grid_search_equals_a_sequential_one(digits, split_runs):
    X, y = digits
    grid = {"alpha": [1e-4, 1e-3], "average": [False, True]}
    est = MinibatchSGDClassifier(random_state=0, max_iter=8, tol=None, batch_size=4, n_jobs=2)
    sequential = GridSearchCV(est, grid, cv=3).fit(X, y)
    with joblib.parallel_backend("threading", n_jobs=2):
        threaded = GridSearchCV(est, grid, cv=3, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(threaded.cv_results_["mean_test_score"],
                                  sequential.cv_results_["mean_test_score"])
    _assert_same(threaded.best_estimator_, sequential.best_estimator_)



# ----------------------------------------------- early stopping (issue 33)

# The issue's fit: each one-vs-rest class stops on its own, long after the
# others (patience of 100 epochs).
ISSUE_33 = dict(early_stopping=True, n_iter_no_change=100, alpha=1e-3, random_state=0)


def _four_digits():
    """Four classes: the fewest a pass splits (a part has two at least);
    iris's three never split."""
    X, y = load_digits(return_X_y=True)
    return X[y < 4] / 16.0, y[y < 4]


FEW_CLASSES = {"iris": lambda: load_iris(return_X_y=True), "four_digits": _four_digits}


@pytest.fixture
def class_epochs(monkeypatch):
    """``class_epochs()``: the epochs each class of the last fit ran (its
    stopping rule's count)."""
    rules = []

    class Recorded(_stopping.StoppingRule):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            rules.append(self)

    monkeypatch.setattr(_training, "StoppingRule", Recorded)
    return lambda: rules[-1].n_iter.tolist()


@pytest.mark.parametrize("data", list(FEW_CLASSES))
def test_early_stopping_with_long_patience_does_not_depend_on_n_jobs(data, split_runs,
                                                                       class_epochs):
    """Each class stops at the same epoch for every ``n_jobs``, and the
    published model (the best epoch's) is the same."""
    X, y = FEW_CLASSES[data]()
    base = MinibatchSGDClassifier(n_jobs=1, **ISSUE_33).fit(X, y)
    epochs = class_epochs()
    assert len(set(epochs)) > 1 and base.n_iter_ == max(epochs)
    for n_jobs in (2, -1):
        _assert_same(MinibatchSGDClassifier(n_jobs=n_jobs, **ISSUE_33).fit(X, y), base)
        assert class_epochs() == epochs
    assert bool(split_runs) == (data == "four_digits")


@pytest.mark.parametrize("n_jobs", [1, 2, -1])
@pytest.mark.parametrize("data", list(FEW_CLASSES))
def test_early_stopping_stops_where_scikit_learns_rule_stops(data, n_jobs, split_runs,
                                                              class_epochs,
                                                              sklearn_validation_rule):
    """Unshuffled at ``batch_size=1``, validation scored and model kept as
    scikit-learn does (the fixture): ``SGDClassifier``'s ``n_iter_`` and
    model, for every ``n_jobs``, the classes stopping at different epochs."""
    X, y = FEW_CLASSES[data]()
    kw = dict(ISSUE_33, shuffle=False)
    peer = SGDClassifier(**kw).fit(X, y)
    ours = MinibatchSGDClassifier(n_jobs=n_jobs, **kw).fit(X, y)
    assert len(set(class_epochs())) > 1
    assert ours.n_iter_ == peer.n_iter_ <= kw["n_iter_no_change"] + 20
    np.testing.assert_allclose(ours.coef_, peer.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.intercept_, peer.intercept_, rtol=0, atol=1e-10)
    assert bool(split_runs) == (data == "four_digits" and n_jobs != 1)


def test_the_issues_late_stop_comes_from_scoring_the_model(request):
    """The issue's fit (iris, shuffled) runs 125 epochs whatever ``n_jobs``
    (scikit-learn's 109): skgd scores its model, scikit-learn the weights
    without their L2 scale, and with the model's intercept counted fully,
    one class's accuracy on the 15 validation rows reaches a new best at
    epoch 25. Scored as scikit-learn scores, the same fit stops within
    ``n_iter_no_change + 20`` epochs, as scikit-learn's does."""
    X, y = load_iris(return_X_y=True)
    patience = ISSUE_33["n_iter_no_change"]
    assert MinibatchSGDClassifier(n_jobs=2, **ISSUE_33).fit(X, y).n_iter_ > patience + 20
    request.getfixturevalue("sklearn_validation_rule")
    for n_jobs in (1, 2, -1):
        est = MinibatchSGDClassifier(n_jobs=n_jobs, **ISSUE_33).fit(X, y)
        assert est.n_iter_ <= patience + 20


# ------------------------------------------------------------- failures


class _UncappedSquared(skgd.losses.SquaredError):
    """Squared error that declares no curvature bound: no step cap."""

    curvature = None


def _snapshot(est):
    return {name: (value.copy() if isinstance(value, np.ndarray) else value)
            for name, value in vars(est).items() if name != "_training"}, (
        None if not hasattr(est, "_state") else
        {name: getattr(est._state, name).copy() for name in _STATE_ARRAYS + ("clock",)})


def _assert_unchanged(est, before):
    attrs, state = _snapshot(est)
    assert attrs.keys() == before[0].keys()
    for name, value in before[0].items():
        assert np.array_equal(np.asarray(attrs[name], dtype=object),
                              np.asarray(value, dtype=object)), name
    if before[1] is not None:
        for name, value in before[1].items():
            assert value.tobytes() == state[name].tobytes(), name


def _no_skgd_threads():
    return not [t for t in threading.enumerate() if t.name.startswith("skgd")]


def _error(call):
    with pytest.raises(Exception) as info:
        call()
    return info.value


@pytest.mark.parametrize("call", ["fit", "warm_fit", "partial_fit"])
def test_a_user_loss_raising_in_a_thread_reaches_the_caller(digits, split_runs, call):
    """The user's own exception, with the score and target where the whole
    pass would have met it first; the estimator as it was; no thread left."""
    X, y = digits
    Xs = sp.csr_matrix(X)  # a stream of CSR chunks undoes by journal
    errors = []
    for n_jobs in (1, 2, 5):
        est = MinibatchSGDClassifier(random_state=0, n_jobs=n_jobs, max_iter=5, tol=None,
                                     learning_rate="constant", eta0=0.05, batch_size=2,
                                     warm_start=call == "warm_fit")
        if call != "fit":
            est.partial_fit(Xs[:20], y[:20], classes=np.arange(10))  # before the loss raises
        est.set_params(loss=RaisesPastHalf())
        before = _snapshot(est)
        if call == "partial_fit":
            error = _error(lambda est=est: est.partial_fit(Xs, y))
        else:
            error = _error(lambda est=est: est.fit(Xs, y))
        _assert_unchanged(est, before)
        assert _no_skgd_threads()
        errors.append(error)
    assert split_runs
    for error in errors:
        assert type(error) is ValueError and str(error) == "bad value"
        assert error.__notes__ == errors[0].__notes__  # where it was raised


def test_a_diverging_class_reaches_the_caller(digits, split_runs):
    """One class whose steps explode (its positives weigh 1e30) stops the
    fit with the message of one thread, and changes nothing."""
    X, y = digits
    class_weight = dict.fromkeys(range(10), 1.0) | {7: 1e30}
    messages = []
    for n_jobs in (1, 2):
        est = MinibatchSGDClassifier(loss=_UncappedSquared(), random_state=0, n_jobs=n_jobs,
                                     learning_rate="constant", eta0=0.1,
                                     class_weight=class_weight, batch_size=4, max_iter=5)
        before = _snapshot(est)
        with pytest.raises(ValueError, match="Training diverged") as info:
            est.fit(X, y)
        _assert_unchanged(est, before)
        assert _no_skgd_threads()
        messages.append(str(info.value))
    assert split_runs and messages[0] == messages[1]


def test_an_exception_in_a_helper_thread_is_raised_after_every_thread_stopped(
        digits, split_runs, monkeypatch):
    """Whatever a thread raises (here a RuntimeError of the second part's
    pass) comes out of fit as it was raised, once the other threads are
    done, and the fitted model is left as it was."""
    X, y = digits
    est = MinibatchSGDClassifier(random_state=0, n_jobs=2, max_iter=3, tol=None).fit(X, y)
    before = _snapshot(est)
    run = _engine.Pass.run
    finished = []

    def failing(self):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("lost the thread")
        result = run(self)
        finished.append(True)
        return result

    monkeypatch.setattr(_engine.Pass, "run", failing)
    with pytest.raises(RuntimeError, match="lost the thread"):
        est.fit(X, y)
    assert finished  # the caller's own part ran to its end first
    _assert_unchanged(est, before)
    assert _no_skgd_threads()
