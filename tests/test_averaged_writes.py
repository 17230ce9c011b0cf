"""Writes to ``coef_`` / ``intercept_`` of an averaged model, then
``partial_fit`` or a warm-started ``fit``, give scikit-learn's model (issue 33).

scikit-learn's averaged training reads its own arrays (``_standard_coef``,
``_average_coef`` and their intercepts), not ``coef_``: what a write does is
what it does to those arrays. Past the average start ``coef_`` is
``_average_coef`` (written in place, the running average goes on from it);
before, it is ``_standard_coef``. An assigned array is ignored. The
regressor publishes a copy of its intercept (every write is ignored), and
the one-vs-rest loop overwrites the averaged intercepts (writes are lost);
the binary ``intercept_`` is ``_average_intercept`` itself. A warm-started
classifier starts its weights from ``coef_`` and ``intercept_`` with a fresh
average; a warm-started regressor goes on from its own weights, and the
``_average_coef`` it had leaks into the new average (with weight ``1/k``
after ``k`` steps).

The classifiers' ``partial_fit`` cases have no fitted intercept: with one,
scikit-learn's averaged classifiers restart their intercept's iterate at
every call from the one of the last call before averaging began, writes
or not (and one-vs-rest publishes its intercepts' iterates): a difference
of the stream, not of the writes, that skgd does not copy.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from test_coef_writes import SAME, _data, _expected_scores, _pair, _partial_fit, _scores, _spy

from skgd import MinibatchSGDRegressor

KINDS = ["binary", "multiclass", "regressor"]
FIRST = 40  # rows of the first call; average=70 begins in the second one


def _in_place(est):
    est.coef_[..., :2] = 0.0
    est.intercept_[...] = 0.5


def _assigned(est):
    est.coef_ = est.coef_ * 0.5
    est.intercept_ = est.intercept_ + 0.25


HOW = {"in_place": _in_place, "assigned": _assigned}
# averaging begun at the write, or not yet (published are the weights)
AVERAGE = {"begun": True, "before": 70}


def _trained_pair(kind, sparse, how, average, warm, fit_intercept=True):
    X, y = _data(kind, sparse)
    models = []
    for est in _pair(kind, learning_rate="constant", eta0=0.02, average=average,
                     warm_start=warm, fit_intercept=fit_intercept, **SAME):
        _partial_fit(est, X[:FIRST], y[:FIRST], kind, first=True)
        HOW[how](est)
        assert_allclose(_scores(est, X), _expected_scores(est, X), rtol=1e-12, atol=1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's power_t
            if warm:
                est.fit(X, y)
            else:
                _partial_fit(est, X[FIRST:], y[FIRST:], kind)
        models.append(est)
    return X, models


def _assert_same_model(X, ours, peer):
    assert_allclose(ours.coef_, peer.coef_, rtol=0, atol=1e-10)
    assert_allclose(ours.intercept_, peer.intercept_, rtol=0, atol=1e-10)
    assert_allclose(_scores(ours, X), _scores(peer, X), rtol=0, atol=1e-10)
    assert ours.t_ == peer.t_


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("how", sorted(HOW))
@pytest.mark.parametrize("start", sorted(AVERAGE))
def test_partial_fit_after_writes_to_an_averaged_model_is_scikit_learns(kind, sparse, how,
                                                                         start):
    X, (ours, peer) = _trained_pair(kind, sparse, how, AVERAGE[start], warm=False,
                                    fit_intercept=kind == "regressor")
    _assert_same_model(X, ours, peer)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("how", sorted(HOW))
@pytest.mark.parametrize("start", sorted(AVERAGE))
def test_warm_start_fit_after_writes_to_an_averaged_model_is_scikit_learns(kind, sparse, how,
                                                                            start):
    X, (ours, peer) = _trained_pair(kind, sparse, how, AVERAGE[start], warm=True)
    _assert_same_model(X, ours, peer)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_warm_started_averaged_regressors_chain_as_scikit_learns(sparse):
    """The second fit does not reach the average start: its weights are
    published, and the average of the first fit waits in
    ``_average_coef`` to leak into the third fit's."""
    X, y = _data("regressor", sparse)
    models = []
    for est in _pair("regressor", learning_rate="constant", eta0=0.02, average=70,
                     warm_start=True, **SAME):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            est.fit(X, y)
            est.fit(X[:FIRST], y[:FIRST])
            est.coef_[:3] = 1.0  # the weights, as published
            est.fit(X, y)
        models.append(est)
    _assert_same_model(X, *models)


@pytest.mark.parametrize("kind", KINDS)
def test_assigned_weights_are_ignored_by_averaged_training(kind):
    X, y = _data(kind, sparse=False)
    models = []
    for how in ("assigned", None):
        est, _ = _pair(kind, learning_rate="constant", eta0=0.02, average=True, **SAME)
        _partial_fit(est, X[:FIRST], y[:FIRST], kind, first=True)
        if how:
            _assigned(est)
            assert_allclose(_scores(est, X), _expected_scores(est, X), rtol=1e-12)
        _partial_fit(est, X[FIRST:], y[FIRST:], kind)
        models.append(est)
    assigned, untouched = models
    assert_array_equal(assigned.coef_, untouched.coef_)
    assert_array_equal(assigned.intercept_, untouched.intercept_)


@pytest.mark.parametrize("kind", KINDS)
def test_ignored_and_intercept_writes_cost_no_pass_over_the_weights(kind, monkeypatch):
    X, y = _data(kind, sparse=True)
    chunks = np.array_split(np.arange(X.shape[0]), 4)
    est, _ = _pair(kind, average=True, random_state=0)
    _partial_fit(est, X[chunks[0]], y[chunks[0]], kind, first=True)
    calls = _spy(monkeypatch)
    state = est._state
    arrays = state.coef, state.avg_coef
    _partial_fit(est, X[chunks[1]], y[chunks[1]], kind)
    est.intercept_ += 1.0  # in place: the average's (binary) or nothing
    _partial_fit(est, X[chunks[2]], y[chunks[2]], kind)
    # assigned (not read first): ignored, never compared with the weights
    est.coef_ = np.zeros(X.shape[1] if kind == "regressor" else (len(est.intercept_),
                                                                  X.shape[1]))
    _partial_fit(est, X[chunks[3]], y[chunks[3]], kind)
    assert calls == []
    assert est._state.coef is arrays[0] and est._state.avg_coef is arrays[1]


def test_intercept_written_in_place_moves_only_a_binary_average():
    X, y = _data("binary", sparse=False)
    binary, twin = (_pair("binary", learning_rate="constant", eta0=0.02, average=True,
                          **SAME)[0] for _ in range(2))
    for est in (binary, twin):
        _partial_fit(est, X[:FIRST], y[:FIRST], "binary", first=True)
    binary.intercept_ += 1.0
    for est in (binary, twin):
        _partial_fit(est, X[FIRST:], y[FIRST:], "binary")
    # the average of 2 * FIRST steps went on from the one written at FIRST
    assert_allclose(binary.intercept_ - twin.intercept_, 0.5, rtol=1e-12)
    Xr, target = _data("regressor", sparse=False)
    reg, reg_twin = (MinibatchSGDRegressor(average=True, **SAME) for _ in range(2))
    for est in (reg, reg_twin):
        est.partial_fit(Xr[:FIRST], target[:FIRST])
    reg.intercept_ += 1.0  # a copy: scikit-learn's training never sees it
    for est in (reg, reg_twin):
        est.partial_fit(Xr[FIRST:], target[FIRST:])
    assert_array_equal(reg.intercept_, reg_twin.intercept_)


@pytest.mark.parametrize("how", ["pickle", "joblib"])
def test_saved_models_tell_assigned_intercepts_apart(how, tmp_path):
    """A loaded model still knows whether ``intercept_`` is the published
    array (joblib does not keep two references one object)."""
    import pickle

    import joblib

    def roundtrip(est):
        if how == "pickle":
            return pickle.loads(pickle.dumps(est))
        joblib.dump(est, tmp_path / "model.joblib")
        return joblib.load(tmp_path / "model.joblib")

    X, y = _data("binary", sparse=False)
    models = {}
    for name in ("in place", "assigned", "untouched"):
        est, _ = _pair("binary", learning_rate="constant", eta0=0.02, average=True, **SAME)
        _partial_fit(est, X[:FIRST], y[:FIRST], "binary", first=True)
        if name == "assigned":
            est.intercept_ = est.intercept_ + 1.0
        est = roundtrip(est)
        if name == "in place":
            est.intercept_ += 1.0
        _partial_fit(est, X[FIRST:], y[FIRST:], "binary")
        models[name] = est
    assert_allclose(models["in place"].intercept_ - models["untouched"].intercept_, 0.5,
                    rtol=1e-12)
    assert_array_equal(models["assigned"].intercept_, models["untouched"].intercept_)
