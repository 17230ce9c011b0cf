"""skgd.pipeline: scikit-learn's Pipeline with partial_fit (issue 36)."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import MaxAbsScaler, Normalizer, StandardScaler

import skgd.model_selection
from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor
from skgd.datasets import load_sms_spam
from skgd.model_selection._shared import shareable_estimator
from skgd.pipeline import Pipeline, make_pipeline

N_FEATURES = 2**18


@pytest.fixture(scope="module")
def sms():
    """600 SMS texts (0/1 labels) in 3 chunks of 200."""
    texts, labels = load_sms_spam()
    y = (labels[:600] == "spam").astype(int)
    texts = texts[:600]
    chunks = [(texts[i:i + 200], y[i:i + 200]) for i in range(0, 600, 200)]
    return texts, y, chunks


def clf(**kw):
    return MinibatchSGDClassifier(loss="log_loss", random_state=0, **kw)


def test_partial_fit_equals_hashing_each_chunk_by_hand(sms):
    texts, y, chunks = sms
    pipe = make_pipeline(HashingVectorizer(n_features=N_FEATURES), clf())
    assert isinstance(pipe, Pipeline)
    hv, ref = HashingVectorizer(n_features=N_FEATURES), clf()
    for X_chunk, y_chunk in chunks:
        assert pipe.partial_fit(X_chunk, y_chunk, classes=[0, 1]) is pipe
        ref.partial_fit(hv.transform(X_chunk), y_chunk, classes=[0, 1])
    trained = pipe[-1]
    assert trained.coef_.shape == (1, N_FEATURES) and np.any(trained.coef_)
    np.testing.assert_allclose(trained.coef_, ref.coef_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(trained.intercept_, ref.intercept_, rtol=0, atol=1e-12)
    # predict/score work after partial_fit alone (the Pipeline checks its last step)
    np.testing.assert_array_equal(pipe.predict(texts), ref.predict(hv.transform(texts)))
    assert pipe.score(texts, y) == ref.score(hv.transform(texts), y)


def test_stateful_step_learns_then_transforms(sms):
    texts, y, chunks = sms
    pipe = make_pipeline(HashingVectorizer(n_features=N_FEATURES), MaxAbsScaler(), clf())
    hv, scaler, ref = HashingVectorizer(n_features=N_FEATURES), MaxAbsScaler(), clf()
    for X_chunk, y_chunk in chunks:
        pipe.partial_fit(X_chunk, y_chunk, classes=[0, 1])
        Xh = hv.transform(X_chunk)
        ref.partial_fit(scaler.partial_fit(Xh).transform(Xh), y_chunk, classes=[0, 1])
    # the scaler learned from every chunk (not from the first one only)
    np.testing.assert_array_equal(pipe[1].max_abs_, scaler.max_abs_)
    assert pipe[1].n_samples_seen_ == 600
    np.testing.assert_allclose(pipe[-1].coef_, ref.coef_, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(
        pipe.predict(texts), ref.predict(scaler.transform(hv.transform(texts))))


def test_step_that_cannot_learn_from_a_stream_is_refused_before_any_change(sms):
    _, _, chunks = sms
    scaler, last = MaxAbsScaler(), clf()
    pipe = make_pipeline(HashingVectorizer(), scaler, TfidfVectorizer(), last)
    with pytest.raises(TypeError, match=r"'tfidfvectorizer' \(TfidfVectorizer\) cannot learn "
                                        r"from a stream.*no partial_fit"):
        pipe.partial_fit(*chunks[0], classes=[0, 1])
    # the scaler before it did not learn, the classifier did not train
    assert not hasattr(scaler, "max_abs_") and not hasattr(last, "coef_")
    assert pipe[2].get_params() == TfidfVectorizer().get_params()
    assert not hasattr(pipe[2], "vocabulary_")


def test_fitted_or_frozen_or_passthrough_steps_only_transform(sms):
    texts, y, chunks = sms
    tfidf = TfidfVectorizer().fit(texts)
    frozen_scaler = MaxAbsScaler().fit(tfidf.transform(texts))
    seen = frozen_scaler.n_samples_seen_
    pipe = Pipeline([("tfidf", tfidf), ("skip", "passthrough"), ("none", None),
                     ("scale", FrozenEstimator(frozen_scaler)), ("norm", Normalizer()),
                     ("clf", clf())])
    ref = clf()
    for X_chunk, y_chunk in chunks:
        pipe.partial_fit(X_chunk, y_chunk, classes=[0, 1])
        Xt = Normalizer().transform(frozen_scaler.transform(tfidf.transform(X_chunk)))
        ref.partial_fit(Xt, y_chunk, classes=[0, 1])
    # a FrozenEstimator forwards partial_fit to what it wraps; the pipeline did not call it
    assert frozen_scaler.n_samples_seen_ == seen
    np.testing.assert_allclose(pipe[-1].coef_, ref.coef_, rtol=0, atol=1e-12)


def test_partial_fit_is_there_only_when_the_last_step_has_one():
    assert not hasattr(make_pipeline(StandardScaler(), LogisticRegression()), "partial_fit")
    assert hasattr(make_pipeline(StandardScaler(), MinibatchSGDClassifier()), "partial_fit")
    assert hasattr(make_pipeline(StandardScaler(), MinibatchSGDRegressor()), "partial_fit")
    assert not hasattr(make_pipeline(StandardScaler(), "passthrough"), "partial_fit")
    # scikit-learn's own Pipeline has none: the reason for this module
    assert not hasattr(SkPipeline([("clf", MinibatchSGDClassifier())]), "partial_fit")


def test_regressor_pipeline_partial_fit():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 5)) * [1, 10, 100, 1, 1]
    y = X @ [1.0, 0.1, 0.01, -1.0, 2.0] + 0.1 * rng.normal(size=300)
    pipe = make_pipeline(StandardScaler(), MinibatchSGDRegressor(random_state=0))
    scaler, ref = StandardScaler(), MinibatchSGDRegressor(random_state=0)
    for i in range(0, 300, 100):
        pipe.partial_fit(X[i:i + 100], y[i:i + 100])
        ref.partial_fit(scaler.partial_fit(X[i:i + 100]).transform(X[i:i + 100]), y[i:i + 100])
    np.testing.assert_allclose(pipe[-1].coef_, ref.coef_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pipe.predict(X), ref.predict(scaler.transform(X)), atol=1e-12)


def test_parameters_are_routed_like_fit_and_plain_ones_go_to_the_last_step(sms):
    _, _, chunks = sms
    rng = np.random.RandomState(0)
    weights = [rng.uniform(0.1, 3, size=len(c[1])) for c in chunks]
    hv = HashingVectorizer(n_features=N_FEATURES)

    def by_hand():
        ref = clf()
        for (X_chunk, y_chunk), w in zip(chunks, weights, strict=True):
            ref.partial_fit(hv.transform(X_chunk), y_chunk, classes=[0, 1], sample_weight=w)
        return ref

    ref = by_hand()
    plain, routed = (make_pipeline(HashingVectorizer(n_features=N_FEATURES), clf())
                     for _ in range(2))
    for (X_chunk, y_chunk), w in zip(chunks, weights, strict=True):
        plain.partial_fit(X_chunk, y_chunk, classes=[0, 1], sample_weight=w)
        routed.partial_fit(X_chunk, y_chunk, minibatchsgdclassifier__classes=[0, 1],
                           minibatchsgdclassifier__sample_weight=w)
    unweighted = clf().partial_fit(hv.transform(chunks[0][0]), chunks[0][1], classes=[0, 1])
    assert not np.allclose(ref.coef_, unweighted.coef_)  # the weights matter here
    for pipe in (plain, routed):
        np.testing.assert_allclose(pipe[-1].coef_, ref.coef_, rtol=0, atol=1e-12)

    # an earlier step that learns gets its own parameters
    scaler = StandardScaler(with_mean=False)
    pipe = make_pipeline(scaler, clf())
    X = hv.transform(chunks[0][0]).toarray()[:, :50]
    pipe.partial_fit(X, chunks[0][1], standardscaler__sample_weight=weights[0], classes=[0, 1])
    np.testing.assert_allclose(
        scaler.var_, StandardScaler(with_mean=False).fit(X, sample_weight=weights[0]).var_)

    pipe = make_pipeline(HashingVectorizer(n_features=N_FEATURES), Normalizer(), clf())
    X_chunk, y_chunk = chunks[0]
    with pytest.raises(ValueError, match="no step 'nosuchstep'"):
        pipe.partial_fit(X_chunk, y_chunk, nosuchstep__sample_weight=weights[0])
    with pytest.raises(ValueError, match="'normalizer'.*does not learn"):
        pipe.partial_fit(X_chunk, y_chunk, classes=[0, 1], normalizer__sample_weight=1)
    with pytest.raises(ValueError, match="twice"):
        pipe.partial_fit(X_chunk, y_chunk, classes=[0, 1],
                         minibatchsgdclassifier__classes=[0, 1])
    assert not hasattr(pipe[-1], "coef_")


def test_failed_partial_fit_puts_learning_steps_back(sms):
    _, _, chunks = sms
    scaler, last = MaxAbsScaler(), clf()
    pipe = make_pipeline(HashingVectorizer(n_features=N_FEATURES), scaler, last)
    pipe.partial_fit(*chunks[0], classes=[0, 1])
    max_abs, seen, coef = scaler.max_abs_.copy(), scaler.n_samples_seen_, last.coef_.copy()
    X_chunk, y_chunk = chunks[1]
    with pytest.raises(ValueError):  # a label outside classes: the classifier refuses
        pipe.partial_fit(X_chunk, np.where(y_chunk == 1, 7, 0), classes=[0, 1])
    assert scaler.n_samples_seen_ == seen and pipe[1] is scaler
    np.testing.assert_array_equal(scaler.max_abs_, max_abs)
    np.testing.assert_array_equal(last.coef_, coef)

    # the first call failing leaves the scaler unfitted
    scaler = MaxAbsScaler()
    pipe = make_pipeline(HashingVectorizer(n_features=N_FEATURES), scaler, clf())
    with pytest.raises(ValueError, match="classes"):
        pipe.partial_fit(*chunks[0])
    assert not hasattr(scaler, "max_abs_")


def test_scikit_learn_pipeline_behaviour_is_kept(sms):
    texts, y, _ = sms
    pipe = make_pipeline(HashingVectorizer(n_features=2**12), clf())
    assert [name for name, _ in pipe.steps] == ["hashingvectorizer", "minibatchsgdclassifier"]
    params = pipe.get_params()
    assert params["minibatchsgdclassifier__loss"] == "log_loss"
    copy = clone(pipe.set_params(minibatchsgdclassifier__alpha=1e-3))
    assert type(copy) is Pipeline and copy[-1].alpha == 1e-3
    assert type(pipe[:1]) is Pipeline and pipe.named_steps["hashingvectorizer"] is pipe[0]
    assert "hashingvectorizer" in pipe._repr_html_()
    with pytest.raises(ValueError, match="stepname__parameter"):  # fit's routing, unchanged
        pipe.fit(texts, y, sample_weight=np.ones(len(y)))
    pipe.fit(texts, y)
    np.testing.assert_array_equal(pipe.predict(texts),
                                  clone(pipe[-1]).fit(pipe[0].transform(texts), y).predict(
                                      pipe[0].transform(texts)))


@pytest.mark.parametrize("search", [GridSearchCV, skgd.model_selection.GridSearchCV])
def test_grid_search_over_the_pipeline(sms, search):
    texts, y, _ = sms
    pipe = make_pipeline(HashingVectorizer(n_features=2**12), clf())
    grid = {"minibatchsgdclassifier__alpha": [1e-4, 1e-2]}
    # skgd's search shares work for it as for scikit-learn's Pipeline
    assert shareable_estimator(pipe)
    found = search(pipe, grid, cv=2).fit(texts, y)
    expected = GridSearchCV(SkPipeline(pipe.steps), grid, cv=2).fit(texts, y)
    np.testing.assert_array_equal(found.cv_results_["mean_test_score"],
                                  expected.cv_results_["mean_test_score"])
    assert type(found.best_estimator_) is Pipeline
    assert hasattr(found.best_estimator_, "partial_fit")
