"""The training driver's bookkeeping (skgd._training, skgd._pass_config): one
private attribute per estimator, parameters checked again whenever one is
assigned, caches that do not travel in a pickle, and models pickled in the
layout of skgd 0.2 still loading."""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.utils._param_validation import InvalidParameterError

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor
from skgd._pass_config import Training
from skgd._training import Trainer

rng = np.random.RandomState(0)
X = rng.normal(size=(120, 5))
Y = {"clf": (X[:, 0] + 0.3 * rng.normal(size=120) > 0).astype(int),
     "reg": X @ np.arange(1.0, 6.0) + 0.1 * rng.normal(size=120)}
EST = {"clf": MinibatchSGDClassifier, "reg": MinibatchSGDRegressor}


def _stream(kind, **params):
    est = EST[kind](random_state=0, average=True, **params)
    extra = {"classes": [0, 1]} if kind == "clf" else {}
    for rows in np.array_split(np.arange(X.shape[0]), 3):
        est.partial_fit(X[rows], Y[kind][rows], **extra)
    return est


@pytest.mark.parametrize("kind", ["clf", "reg"])
@pytest.mark.parametrize("how", ["fit", "partial_fit"])
def test_one_private_attribute_beside_parameters_and_fitted_ones(kind, how):
    est = EST[kind](random_state=0)
    if how == "fit":
        est.fit(X, Y[kind])
    else:
        est = _stream(kind)
    params = set(est.get_params(deep=False))
    private = [k for k in vars(est) if k.startswith("_")]
    others = [k for k in vars(est) if not k.startswith("_") and k not in params]
    assert private == ["_training"]
    assert isinstance(est._training, Training)
    assert others and all(k.endswith("_") for k in others), others


@pytest.mark.parametrize("assign", ["set_params", "attribute"])
def test_an_assigned_parameter_is_checked_again(assign):
    est = _stream("reg")
    token = est._training.token
    est.partial_fit(X[:10], Y["reg"][:10])
    assert est._training.token is token  # nothing assigned: the check is not repeated
    if assign == "set_params":
        est.set_params(alpha=-1.0)
    else:
        est.alpha = -1.0
    with pytest.raises(InvalidParameterError, match="alpha"):
        est.partial_fit(X[:10], Y["reg"][:10])
    est.alpha = 1e-4
    est.partial_fit(X[:10], Y["reg"][:10])
    assert est._training.token is not token  # a new setting: plan and hyper rebuilt


def test_a_changed_parameter_takes_effect_from_the_next_call():
    """The cached plan and hyper-parameters follow the parameters: eta0
    assigned between two calls trains the next one as an estimator built
    with that eta0 (no cache) would, from the same state."""
    a = _stream("reg", learning_rate="constant", eta0=0.01)
    b = pickle.loads(pickle.dumps(a))  # the same state, no caches
    c = pickle.loads(pickle.dumps(a))
    a.eta0 = 0.001
    a.partial_fit(X, Y["reg"])
    b.set_params(eta0=0.001)
    b.partial_fit(X, Y["reg"])
    c.partial_fit(X, Y["reg"])  # still eta0=0.01
    assert_array_equal(a.coef_, b.coef_)
    assert not np.allclose(a.coef_, c.coef_)


@pytest.mark.parametrize("kind", ["clf", "reg"])
def test_a_pickle_carries_the_model_not_the_caches(kind):
    est = _stream(kind, penalty="elasticnet")
    loaded = pickle.loads(pickle.dumps(est))
    memo = loaded._training
    assert memo.checked is None and memo.plan is None and memo.hyper is None
    assert memo.state is not None
    assert_array_equal(loaded.predict(X), est.predict(X))
    extra = {"classes": [0, 1]} if kind == "clf" else {}
    est.partial_fit(X, Y[kind], **extra)
    loaded.partial_fit(X, Y[kind], **extra)
    assert_array_equal(loaded.coef_, est.coef_)
    assert_array_equal(loaded.intercept_, est.intercept_)


@pytest.mark.parametrize("kind", ["clf", "reg"])
def test_a_model_pickled_in_the_old_layout_loads(kind):
    """skgd 0.2 kept the training record's fields as attributes."""
    est = _stream(kind)
    est.coef_[..., 0] += 1.0  # a write in place, remembered as coef_out
    saved = est.__getstate__()
    memo = saved.pop("_training")
    saved.update({"_state": memo.state, "_averaged_published": memo.averaged,
                  "_intercept_out": memo.intercept_out, "_coef_out": memo.coef_out,
                  "_coef_view": memo.coef_view, "_needs_cap": memo.needs_cap})
    old = EST[kind].__new__(EST[kind])
    old.__setstate__(dict(saved))
    assert [k for k in vars(old) if k.startswith("_")] == ["_training"]
    assert_array_equal(old.predict(X), est.predict(X))
    assert_array_equal(old.coef_, est.coef_)


def test_a_failed_call_leaves_the_record_as_it_was():
    est = _stream("clf")
    memo = est._training
    before = pickle.dumps(est)
    with pytest.raises(ValueError):
        est.partial_fit(X[:, :3], Y["clf"])  # wrong width
    assert est._training is memo
    assert pickle.dumps(est) == before


def test_trainer_prepare_and_run_checked_train_a_state_as_fit_does():
    """The driver's two steps, by hand, give fit's first epoch."""
    from skgd import _engine

    params = dict(loss="epsilon_insensitive", random_state=0, max_iter=1, tol=None,
                  shuffle=False)
    est = MinibatchSGDRegressor(**params).fit(X, Y["reg"])
    by_hand = MinibatchSGDRegressor(**params)
    by_hand._check_params()
    trainer = Trainer(by_hand)
    state = trainer.new_state(1, X.shape[1], X.dtype, for_fit=True)
    rows = np.arange(X.shape[0], dtype=np.int64)
    Yc, sw = Y["reg"].reshape(-1, 1), np.ones(X.shape[0])
    plan = trainer.plan()
    rule, hyper = trainer.prepare(state, X, Yc, sw, rows, None, plan)
    with _engine.prepare_pass(state, X, Yc, sw, rows, hyper, rule, plan.spec, plan.params,
                              False) as prepared:
        objectives = trainer.run_checked(prepared, plan, state, 1, False)
    assert objectives.shape == (1,)
    assert est.loss_curve_ == [float(objectives[0])]
    assert_array_equal(state.weights()[0].ravel(), est.coef_)
