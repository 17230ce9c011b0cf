"""``coef_`` and ``intercept_`` behave as scikit-learn's (issue 23).

Both can be written in place or assigned; predictions and the next training
call see every write, and at ``batch_size=1`` without shuffling the model
after the same writes and the same calls is scikit-learn's. A stream that
never touches the weights never pays for the width of the model.
"""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.linear_model import SGDClassifier, SGDRegressor

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor, _engine
from skgd.exceptions import StepCapWarning

KINDS = ["binary", "multiclass", "regressor"]
# scikit-learn's algorithm: per-sample steps in order, one epoch per call
SAME = dict(shuffle=False, tol=None, max_iter=1, random_state=0)


def _data(kind, sparse, n=80, d=12):
    """Dense data (every value non-zero) or CSR data of density 0.15: both
    libraries then damp the intercept's step alike (skgd decides by density,
    scikit-learn by container)."""
    rng = np.random.RandomState(0)
    if sparse:
        X = sp.random(n, d, density=0.15, format="csr", random_state=rng) * 2.0
        X.indices, X.indptr = X.indices.astype(np.int32), X.indptr.astype(np.int32)
        Xd = X.toarray()
    else:
        X = Xd = rng.randn(n, d)
    score = Xd @ rng.randn(d) + 0.2 * rng.randn(n)
    if kind == "regressor":
        return X, score
    if kind == "binary":
        return X, (score > 0).astype(int)
    return X, np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))


def _pair(kind, **params):
    """(ours, scikit-learn's) with the same arguments."""
    if kind == "regressor":
        return MinibatchSGDRegressor(**params), SGDRegressor(**params)
    return MinibatchSGDClassifier(**params), SGDClassifier(**params)


def _partial_fit(est, X, y, kind, first=False):
    with warnings.catch_warnings():
        warnings.simplefilter("error", StepCapWarning)  # the steps must be the ones asked
        if first and kind != "regressor":
            return est.partial_fit(X, y, classes=np.unique(y))
        return est.partial_fit(X, y)


def _scores(est, X):
    out = est.predict(X) if isinstance(est, (SGDRegressor, MinibatchSGDRegressor)) else (
        est.decision_function(X))
    return out.reshape(X.shape[0], -1)


def _expected_scores(est, X):
    coef = est.coef_.toarray() if sp.issparse(est.coef_) else np.asarray(est.coef_)
    return (X @ coef.reshape(-1, X.shape[1]).T).reshape(X.shape[0], -1) + est.intercept_


WRITES = {
    "coef_slice": lambda est: est.coef_.__setitem__((..., slice(0, 4)), 0.0),
    "coef_scale": lambda est: est.coef_.__imul__(2.0),
    "coef_assign": lambda est: setattr(est, "coef_", est.coef_ + 0.25),
    "intercept_add": lambda est: est.intercept_.__iadd__(0.5),
    "intercept_slice": lambda est: est.intercept_.__setitem__(slice(None), -0.3),
    "intercept_assign": lambda est: setattr(est, "intercept_", np.full(est.intercept_.shape,
                                                                       0.7)),
}


def _write(est, names):
    for name in names:
        WRITES[name](est)


# ------------------------------------------------ predictions see every write


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("write", sorted(WRITES))
def test_predictions_and_the_next_partial_fit_see_writes_as_scikit_learn(kind, sparse, write):
    X, y = _data(kind, sparse)
    half = X.shape[0] // 2
    models = []
    for est in _pair(kind, learning_rate="constant", eta0=0.02, **SAME):
        _partial_fit(est, X[:half], y[:half], kind, first=True)
        _write(est, [write])
        assert_allclose(_scores(est, X), _expected_scores(est, X), rtol=1e-12, atol=1e-12)
        models.append(est)
    ours, peer = models
    assert ours.coef_.shape == peer.coef_.shape
    assert ours.intercept_.shape == peer.intercept_.shape
    assert_allclose(_scores(ours, X), _scores(peer, X), rtol=0, atol=1e-12)
    for est in models:
        _partial_fit(est, X[half:], y[half:], kind)
    assert_allclose(ours.coef_, peer.coef_, rtol=0, atol=1e-10)
    assert_allclose(ours.intercept_, peer.intercept_, rtol=0, atol=1e-10)
    assert_allclose(_scores(ours, X), _scores(peer, X), rtol=0, atol=1e-10)


@pytest.mark.parametrize(("kind", "learning_rate"), [
    ("binary", "optimal"), ("multiclass", "optimal"), ("binary", "invscaling"),
    ("multiclass", "invscaling"), ("regressor", "invscaling")])
def test_writes_to_both_then_a_stream_match_scikit_learn(kind, learning_rate):
    X, y = _data(kind, sparse=True)
    chunks = np.array_split(np.arange(X.shape[0]), 4)
    models = []
    for est in _pair(kind, learning_rate=learning_rate, eta0=0.02, alpha=1e-3, **SAME):
        _partial_fit(est, X[chunks[0]], y[chunks[0]], kind, first=True)
        _write(est, ["coef_slice", "intercept_add"])
        _partial_fit(est, X[chunks[1]], y[chunks[1]], kind)
        _write(est, ["coef_scale"])
        _partial_fit(est, X[chunks[2]], y[chunks[2]], kind)
        _partial_fit(est, X[chunks[3]], y[chunks[3]], kind)  # no write before this one
        models.append(est)
    ours, peer = models
    assert_allclose(ours.coef_, peer.coef_, rtol=0, atol=1e-10)
    assert_allclose(ours.intercept_, peer.intercept_, rtol=0, atol=1e-10)
    assert ours.t_ == peer.t_


@pytest.mark.parametrize("kind", KINDS)
def test_warm_start_fit_starts_from_the_writes_as_scikit_learn(kind):
    X, y = _data(kind, sparse=False)
    models = []
    for est in _pair(kind, learning_rate="constant", eta0=0.02, warm_start=True, **SAME):
        with warnings.catch_warnings():
            warnings.simplefilter("error", StepCapWarning)
            est.fit(X, y)
            _write(est, ["coef_slice", "intercept_assign"])
            est.fit(X, y)
        models.append(est)
    ours, peer = models
    assert_allclose(ours.coef_, peer.coef_, rtol=0, atol=1e-10)
    assert_allclose(ours.intercept_, peer.intercept_, rtol=0, atol=1e-10)


# ------------------------------------------------------------------ averaging
# (assigned writes, intercepts and warm starts: tests/test_averaged_writes.py)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("write", ["coef_slice", "coef_scale"])
def test_averaged_coef_written_in_place_goes_on_as_scikit_learn(kind, sparse, write):
    """With averaging begun, coef_ is the average: scikit-learn's running
    average goes on from what is written there, the weights as they were.

    (Without intercepts for the classifiers: scikit-learn's averaged
    classifiers restart their intercept's iterate at every partial_fit
    call, writes or not; its regressor does not.)"""
    X, y = _data(kind, sparse)
    half = X.shape[0] // 2
    models = []
    for est in _pair(kind, learning_rate="constant", eta0=0.02, average=True,
                     fit_intercept=kind == "regressor", **SAME):
        _partial_fit(est, X[:half], y[:half], kind, first=True)
        _write(est, [write])
        assert_allclose(_scores(est, X), _expected_scores(est, X), rtol=1e-12, atol=1e-12)
        _partial_fit(est, X[half:], y[half:], kind)
        models.append(est)
    ours, peer = models
    assert_allclose(ours.coef_, peer.coef_, rtol=0, atol=1e-10)
    assert_allclose(ours.intercept_, peer.intercept_, rtol=0, atol=1e-10)


def test_writes_before_averaging_begins_go_into_the_weights():
    X, y = _data("binary", sparse=False)
    models = []
    for est in _pair("binary", learning_rate="constant", eta0=0.02, average=70, **SAME):
        _partial_fit(est, X[:40], y[:40], "binary", first=True)  # average of nothing yet
        _write(est, ["coef_scale", "intercept_add"])
        _partial_fit(est, X[40:], y[40:], "binary")  # averaging begins
        models.append(est)
    ours, peer = models
    assert_allclose(ours.coef_, peer.coef_, rtol=0, atol=1e-10)


# ------------------------------------------------------------------- layouts


def test_two_class_multinomial_writes_are_the_score_difference():
    X, y = _data("binary", sparse=False)
    # steps too small to move anything: the model stays what was written
    est = MinibatchSGDClassifier(multi_class="multinomial", loss="log_loss",
                                 learning_rate="constant", eta0=1e-300, **SAME)
    est.partial_fit(X, y, classes=[0, 1])
    assert est.coef_.shape == (1, X.shape[1]) and est.intercept_.shape == (1,)
    est.coef_[0, :3] = 1.5
    est.intercept_[0] = -0.25
    assert_allclose(est.decision_function(X), _expected_scores(est, X).ravel(), rtol=1e-12)
    written = est.coef_.copy()
    est.partial_fit(X, y)
    assert_allclose(est.coef_, written, rtol=1e-12, atol=1e-200)
    assert_allclose(est.intercept_, [-0.25], rtol=1e-12)


@pytest.mark.parametrize("kind", ["multiclass", "regressor"])
def test_float32_models_see_writes(kind):
    X, y = _data(kind, sparse=False)
    X = X.astype(np.float32)
    est, _ = _pair(kind, **SAME)
    _partial_fit(est, X, y, kind, first=True)
    est.coef_[..., 0] = 3.0
    est.intercept_[:] = 1.0
    scores = _scores(est, X)
    assert scores.dtype == np.float32
    assert_allclose(scores, _expected_scores(est, X), rtol=1e-5, atol=1e-5)
    est.partial_fit(X, y)
    assert est.coef_.dtype == est.intercept_.dtype == np.float32


def test_sparsified_coef_can_be_written():
    X, y = _data("multiclass", sparse=True)
    ours = MinibatchSGDClassifier(penalty="l1", alpha=0.01, **SAME)
    twin = clone(ours)
    for est in (ours, twin):
        est.partial_fit(X, y, classes=[0, 1, 2])
    ours.sparsify()
    ours.coef_.data *= 2.0  # the stored weights of a CSR matrix
    twin.coef_ *= 2.0
    assert_allclose(ours.decision_function(X), twin.decision_function(X), rtol=1e-12)
    for est in (ours, twin):
        est.partial_fit(X, y)
    assert isinstance(ours.coef_, np.ndarray)
    assert_array_equal(ours.coef_, twin.coef_)
    assert_array_equal(ours.intercept_, twin.intercept_)


# ----------------------------------------------------------------- the cost


def _spy(monkeypatch):
    """Count the calls that form or replace all the weights (O(n_features))."""
    calls = []
    for name in ("weights", "averaged_weights", "replace_weights", "replace_averaged_weights"):
        original = getattr(_engine.EngineState, name)

        def spy(self, *args, _name=name, _original=original):
            calls.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(_engine.EngineState, name, spy)
    return calls


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("average", [False, True])
def test_a_stream_that_does_not_touch_the_weights_never_forms_them(kind, average, monkeypatch):
    X, y = _data(kind, sparse=True)
    chunks = np.array_split(np.arange(X.shape[0]), 4)
    calls = _spy(monkeypatch)
    est, _ = _pair(kind, average=average, random_state=0)
    _partial_fit(est, X[chunks[0]], y[chunks[0]], kind, first=True)
    for rows in chunks[1:]:
        est.predict(X[rows])
        float(est.intercept_[0])  # reading intercept_ is free
        _partial_fit(est, X[rows], y[rows], kind)
    assert calls == []
    # a read costs the weights once, then once more at the next call (to see
    # whether they were written); a call after that costs nothing again
    est.coef_.sum()
    _partial_fit(est, X[chunks[1]], y[chunks[1]], kind)
    assert len(calls) == 2 and "replace" not in "".join(calls)
    _partial_fit(est, X[chunks[2]], y[chunks[2]], kind)
    est.predict(X)
    assert len(calls) == 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reading_the_weights_changes_nothing(kind, average, dtype):
    X, y = _data(kind, sparse=True)
    X = X.astype(dtype)
    read, unread = (_pair(kind, average=average, penalty="elasticnet", random_state=0)[0]
                    for _ in range(2))
    for est in (read, unread):
        _partial_fit(est, X, y, kind, first=True)
    read.coef_, read.intercept_  # noqa: B018
    # (predictions multiply by coef_ once it is read: the same to rounding)
    assert_allclose(read.predict(X), unread.predict(X),
                    rtol=1e-6 if dtype == np.float32 else 1e-13)
    assert pickle.dumps(read) == pickle.dumps(unread)  # a read array is not saved
    for est in (read, unread):
        est.partial_fit(X, y)
    assert_array_equal(read.coef_, unread.coef_)
    assert_array_equal(read.intercept_, unread.intercept_)


def test_an_array_read_before_a_training_call_is_a_snapshot_after_it():
    X, y = _data("binary", sparse=False)
    est = MinibatchSGDClassifier(**SAME).partial_fit(X, y, classes=[0, 1])
    old = est.coef_
    est.partial_fit(X, y)
    assert est.coef_ is not old
    before = est.decision_function(X)
    old[:] = 0.0  # no longer the model's
    assert_array_equal(est.decision_function(X), before)


# ------------------------------------------------------- persistence, errors


@pytest.mark.parametrize("kind", KINDS)
def test_writes_survive_pickling(kind):
    X, y = _data(kind, sparse=False)
    est, _ = _pair(kind, **SAME)
    _partial_fit(est, X, y, kind, first=True)
    twin = pickle.loads(pickle.dumps(est))
    for model in (est, twin):
        model.coef_[..., 1] = -2.0
        model.intercept_ += 0.5
    loaded = pickle.loads(pickle.dumps(est))
    assert_array_equal(_scores(loaded, X), _scores(est, X))
    for model in (est, loaded, twin):
        model.partial_fit(X, y)
    assert_array_equal(loaded.coef_, est.coef_)
    assert_array_equal(twin.coef_, est.coef_)
    assert not hasattr(clone(est), "coef_")


def test_writes_survive_skops():
    sio = pytest.importorskip("skops.io", reason='skops is in the "test" extra')
    X, y = _data("multiclass", sparse=False)
    est = MinibatchSGDClassifier(**SAME).partial_fit(X, y, classes=[0, 1, 2])
    est.coef_[:, 0] = 1.0
    est.intercept_ = np.array([0.1, 0.2, 0.3])
    data = sio.dumps(est)
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert_array_equal(loaded.decision_function(X), est.decision_function(X))
    assert_array_equal(loaded.coef_, est.coef_)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_writes_are_refused_by_training_and_change_nothing(value):
    X, y = _data("binary", sparse=False)
    est = MinibatchSGDClassifier(**SAME).partial_fit(X, y, classes=[0, 1])
    state = pickle.dumps(est._state)
    est.coef_[0, 2] = value
    with pytest.raises(ValueError, match=r"coef_ must be finite .* index \(0, 2\)"):
        est.partial_fit(X, y)
    assert pickle.dumps(est._state) == state
    assert est.coef_[0, 2] != est.coef_[0, 2] or est.coef_[0, 2] == value  # still there


@pytest.mark.parametrize("attribute", ["coef_", "intercept_"])
def test_an_assigned_array_of_the_wrong_shape_is_refused(attribute):
    X, y = _data("multiclass", sparse=False)
    est = MinibatchSGDClassifier(**SAME).partial_fit(X, y, classes=[0, 1, 2])
    setattr(est, attribute, np.zeros(5))
    with pytest.raises(ValueError, match=f"{attribute} has shape \\(5,\\), but this model's"):
        est.predict(X)
    with pytest.raises(ValueError, match=f"{attribute} has shape"):
        est.partial_fit(X, y)


def test_writes_to_an_averaged_model_whose_averaging_was_turned_off_go_into_the_weights():
    X, y = _data("multiclass", sparse=False)
    est = MinibatchSGDClassifier(average=True, **SAME).partial_fit(X, y, classes=[0, 1, 2])
    weights, intercepts = est._state.weights()
    est.set_params(average=False)
    est.coef_[:, :4] = 0.0
    est.intercept_[1] = 5.0
    est._adopt_writes(est._state)  # what the next partial_fit starts with
    weights[:, :4], intercepts[1] = 0.0, 5.0
    assert_allclose(est._state.weights()[0], weights, rtol=1e-14)
    assert_array_equal(est._state.intercept, intercepts)


def test_predictions_with_a_non_finite_or_scalar_intercept():
    X, y = _data("regressor", sparse=False)
    est = MinibatchSGDRegressor(**SAME).partial_fit(X, y)
    est.intercept_ = 2.0  # one intercept: any layout
    assert_allclose(est.predict(X), X @ est.coef_ + 2.0, rtol=1e-12)
    est.intercept_ = np.array([np.nan])
    assert np.isnan(est.predict(X)).all()  # as scikit-learn's; training refuses it
    with pytest.raises(ValueError, match="intercept_ must be finite"):
        est.partial_fit(X, y)
