"""The step caps at batch_size=1 (scikit-learn's algorithm wherever its run
trains; the caps only rescue a run that diverges) and the StepCapWarning
(once per fit, naming the step it shortened, at the user's line)."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import SGDRegressor
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skgd
from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor, StepCapWarning

SKGD_DIR = str(Path(skgd.__file__).resolve().parent)


def _cap_warnings(fit):
    """Run ``fit()``; the StepCapWarnings it issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit()
    return [w for w in caught if issubclass(w.category, StepCapWarning)]


def _steps_named(message):
    """The ``(before, after)`` pairs of the steps a warning says it shortened."""
    number = r"(\d+(?:\.\d+)?(?:e[-+]?\d+)?)"
    return [(float(a), float(b))
            for a, b in re.findall(f"from {number} to {number}", str(message))]


def _assert_well_formed(w):
    assert not str(Path(w.filename).resolve()).startswith(SKGD_DIR), w.filename
    pairs = _steps_named(w.message)
    assert pairs, w.message
    assert all(after < before for before, after in pairs), w.message


@pytest.fixture(scope="module")
def scaled_abalone(abalone):
    X, y = abalone
    return StandardScaler().fit_transform(X), y


def test_scaled_abalone_trains_silently_in_a_pipeline(abalone):
    """The cap (0.0017 on standardised abalone, set by a row with |x|^2 = 563)
    used to shorten eta0=0.01 in every fold; scikit-learn's steps train
    there, so they are taken, silently."""
    X, y = abalone
    pipe = make_pipeline(StandardScaler(), MinibatchSGDRegressor())
    scores = []
    assert not _cap_warnings(lambda: scores.append(cross_val_score(pipe, X, y, cv=5)))
    assert scores[0].mean() > 0.35


@pytest.mark.parametrize("params", [dict(), dict(learning_rate="constant", eta0=0.05)], ids=str)
def test_scaled_abalone_unshuffled_is_sgdregressors_run(scaled_abalone, params):
    X, y = scaled_abalone
    kw = dict(shuffle=False, tol=None, max_iter=5, **params)
    theirs = SGDRegressor(**kw).fit(X, y)
    ours = []
    caught = _cap_warnings(lambda: ours.append(MinibatchSGDRegressor(**kw).fit(X, y)))
    assert not caught
    assert_allclose(ours[0].coef_, theirs.coef_, rtol=1e-8)
    assert_allclose(ours[0].intercept_, theirs.intercept_, rtol=1e-8)
    assert ours[0].t_ == theirs.t_


def test_scaled_abalone_default_stopping_is_sgdregressors(scaled_abalone):
    """With tol (scikit-learn's stopping rule on the unweighted loss) too."""
    X, y = scaled_abalone
    theirs = SGDRegressor(shuffle=False).fit(X, y)
    ours = MinibatchSGDRegressor(shuffle=False).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert_allclose(ours.coef_, theirs.coef_, rtol=1e-8)


def test_a_diverging_per_sample_run_trains_under_the_cap_and_says_so(abalone):
    """Constant steps of 1 on abalone: scikit-learn's run diverges (its
    derivatives clamped at 1e12, R^2 about -1e23); skgd's overflows in its
    first epoch, trains again under the cap, and warns once."""
    X, y = abalone
    kw = dict(learning_rate="constant", eta0=1.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            assert SGDRegressor(**kw).fit(X, y).score(X, y) < -1e6
        except ValueError:  # an overflow, for other versions
            pass
    ours = []
    caught = _cap_warnings(lambda: ours.append(MinibatchSGDRegressor(**kw).fit(X, y)))
    est = ours[0]
    assert np.isfinite(est.coef_).all() and np.isfinite(est.intercept_).all()
    assert est.score(X, y) > 0.45
    assert len(caught) == 1
    w = caught[0]
    _assert_well_formed(w)
    assert w.filename == __file__
    message = str(w.message)
    assert "diverged" in message and "epoch 1" in message
    assert "weights' step from 1 to 0.0849" in message
    assert "StandardScaler" not in message  # its features are scaled to [-1, 1]


@pytest.mark.parametrize("lr, eta0", [("invscaling", 1.0), ("constant", 0.3)])
def test_a_blown_up_run_is_rescued_on_standardised_data(scaled_abalone, lr, eta0):
    """Diverging runs that stay finite count too ('invscaling' eta0=1: the
    mean loss of the first epoch reaches 1e66, then the decaying steps pull
    the weights back); the advice points at the outlying rows, not at the
    (already standardised) features."""
    X, y = scaled_abalone
    ours = []
    caught = _cap_warnings(lambda: ours.append(
        MinibatchSGDRegressor(learning_rate=lr, eta0=eta0, random_state=0).fit(X, y)))
    assert ours[0].score(X, y) > 0.45
    assert len(caught) == 1
    _assert_well_formed(caught[0])
    assert "outliers" in str(caught[0].message)
    assert "StandardScaler" not in str(caught[0].message)


def test_the_rescue_starts_again_from_coef_init(abalone):
    X, y = abalone
    kw = dict(learning_rate="constant", eta0=1.0, random_state=0, max_iter=3, tol=None)
    init = np.linspace(-1, 1, X.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StepCapWarning)
        a = MinibatchSGDRegressor(**kw).fit(X, y, coef_init=init, intercept_init=[2.0])
        b = MinibatchSGDRegressor(**kw).fit(X, y, coef_init=init, intercept_init=[2.0])
        c = MinibatchSGDRegressor(**kw).fit(X, y)
    assert_allclose(a.coef_, b.coef_)
    assert not np.allclose(a.coef_, c.coef_)
    assert a.t_ == 3 * X.shape[0] + 1


def test_a_diverging_stream_is_rescued_once(abalone):
    """partial_fit: the call whose uncapped pass diverges runs again under
    the caps, as do the stream's later calls; one warning for the stream."""
    X, y = abalone
    est = MinibatchSGDRegressor(learning_rate="constant", eta0=1.0, random_state=0)

    def stream():
        for start in range(0, X.shape[0], 500):
            est.partial_fit(X[start:start + 500], y[start:start + 500])

    caught = _cap_warnings(stream)
    assert len(caught) == 1
    _assert_well_formed(caught[0])
    assert caught[0].filename == __file__
    assert np.isfinite(est.coef_).all()
    assert est.score(X, y) > 0.3


def test_a_stream_that_trains_is_sgdregressors(scaled_abalone):
    X, y = scaled_abalone
    theirs, ours = SGDRegressor(shuffle=False), MinibatchSGDRegressor(shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StepCapWarning)
        for start in range(0, X.shape[0], 1000):
            chunk = slice(start, start + 1000)
            theirs.partial_fit(X[chunk], y[chunk])
            ours.partial_fit(X[chunk], y[chunk])
    assert_allclose(ours.coef_, theirs.coef_, rtol=1e-8)


def test_minibatches_keep_their_caps(scaled_abalone):
    """batch_size > 1: the caps stay, and an eta0 they shorten is said once,
    with the weights' step named."""
    X, y = scaled_abalone
    caught = _cap_warnings(lambda: MinibatchSGDRegressor(
        batch_size=32, learning_rate="constant", eta0=0.01, max_iter=3, tol=None).fit(X, y))
    assert len(caught) == 1
    _assert_well_formed(caught[0])
    assert "weights' step from 0.32 to" in str(caught[0].message)
    assert "batch_size" in str(caught[0].message)


def test_a_warning_through_a_grid_search_points_at_the_users_line(abalone):
    X, y = abalone
    search = GridSearchCV(MinibatchSGDRegressor(learning_rate="constant", random_state=0),
                          {"eta0": [0.01, 1.0]}, cv=2)
    caught = _cap_warnings(lambda: search.fit(X, y))
    # eta0=1 diverges in both folds (and in the refit, if it scored best)
    assert 2 <= len(caught) <= 3
    for w in caught:
        _assert_well_formed(w)
    assert all(w.filename == __file__ for w in caught)


@pytest.fixture(scope="module")
def sms_tfidf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from skgd.datasets import load_sms_spam

    texts, labels = load_sms_spam()
    return TfidfVectorizer(sublinear_tf=True).fit_transform(texts), labels


def test_sms_grid_warns_only_about_steps_it_shortened(sms_tfidf):
    """36 fits on unit-length rows: batch_size=1 (log loss) is never capped;
    a minibatch's warning names the step the cap shortened (on this sparse
    data mostly the intercept's: 'from 8 to 8' named the weights' untouched
    step), at most once per fit, at this file's line, and never advises
    scaling features that are already normalised."""
    X, y = sms_tfidf
    warned = 0
    for lr in ("constant", "invscaling", "adaptive"):
        for eta0 in (0.01, 0.1, 1.0):
            for batch_size in (1, 8, 32, 128):
                est = MinibatchSGDClassifier(loss="log_loss", learning_rate=lr, eta0=eta0,
                                             batch_size=batch_size, random_state=0)
                caught = _cap_warnings(lambda est=est: est.fit(X, y))
                assert len(caught) <= 1
                if batch_size == 1:
                    assert not caught
                for w in caught:
                    _assert_well_formed(w)
                    assert w.filename == __file__
                    message = str(w.message)
                    assert "StandardScaler" not in message and "scal" not in message
                    assert "batch_size" in message
                warned += len(caught)
    assert warned <= 12


def test_modified_huber_keeps_its_cap_at_batch_size_1(abalone):
    """Modified Huber cannot diverge, but its uncapped per-sample steps
    oscillate (scikit-learn's run fails check_classifiers_train): capped at
    every batch size, so an eta0 the cap shortens is still warned about."""
    X, y = abalone
    labels = (y > np.median(y)).astype(int)
    caught = _cap_warnings(lambda: MinibatchSGDClassifier(
        loss="modified_huber", learning_rate="constant", eta0=1.0, max_iter=2,
        tol=None).fit(X, labels))
    assert len(caught) == 1
    _assert_well_formed(caught[0])


def test_divergence_that_no_cap_can_rescue_still_raises_and_pickles():
    """A user's loss without a curvature bound has no cap to fall back on:
    its divergence is scikit-learn's ValueError, which survives the trip
    from a worker process (GridSearchCV with n_jobs)."""
    import pickle

    from skgd.losses import SquaredError

    class NoBound(SquaredError):
        curvature = None

    rng = np.random.RandomState(0)
    X = 1000 * rng.randn(200, 5)
    est = MinibatchSGDRegressor(loss=NoBound(), learning_rate="constant", eta0=0.01,
                                max_iter=5, tol=None, random_state=0)
    with pytest.raises(ValueError, match="Floating-point under-/overflow") as info:
        est.fit(X, X @ rng.randn(5))
    again = pickle.loads(pickle.dumps(info.value))
    assert isinstance(again, ValueError) and str(again) == str(info.value)
