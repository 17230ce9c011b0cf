"""skgd.model_selection's searches give scikit-learn's search results.

Each test runs scikit-learn's GridSearchCV / RandomizedSearchCV and skgd's
over the same estimator, candidates, splits and scoring, and compares every
split's score, the ranks, the best candidate and the refitted estimator.
Small real data sets keep the file at about a minute once compiled.
"""

import re

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import loguniform
from sklearn import config_context, get_config
from sklearn import model_selection as sk
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import FitFailedWarning
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import KernelCenterer, MaxAbsScaler, StandardScaler

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor
from skgd._fit_many import fit_together
from skgd.datasets import load_adult, load_sms_spam
from skgd.model_selection import GridSearchCV, RandomizedSearchCV

TOL = 1e-10


@pytest.fixture(scope="module")
def binary():
    X, y, _, _ = load_adult()
    return X[:300], y[:300]


@pytest.fixture(scope="module")
def three_class():
    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, [0, 1, 2])
    return StandardScaler().fit_transform(X[keep][:300]), y[keep][:300]


@pytest.fixture(scope="module")
def regression():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X[:300]), (y[:300] - y.mean()) / y.std()


@pytest.fixture(scope="module")
def sms():
    texts, labels = load_sms_spam()
    return list(texts[:300]), np.asarray(labels[:300])


def assert_same_search(ours, theirs):
    """Every score, rank and best_* attribute of two fitted searches equal."""
    a, b = ours.cv_results_, theirs.cv_results_
    # skgd's one addition, when it shared work: which candidates' steps the cap shortened
    extra = {"step_capped"}
    assert a.keys() - extra == b.keys() - extra
    if "step_capped" in a:
        assert a["step_capped"].dtype == bool and a["step_capped"].shape == (len(b["params"]),)
    if "step_capped" in b:
        assert list(a["step_capped"]) == list(b["step_capped"])
    for key in b.keys() - extra:
        if key == "params":
            assert a[key] == b[key]
            continue
        assert type(a[key]) is type(b[key]) and a[key].dtype == b[key].dtype, key
        if key.startswith("param_"):
            assert list(a[key]) == list(b[key]), key
        elif "time" not in key:
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=TOL, err_msg=key)
    assert ours.multimetric_ == theirs.multimetric_
    assert ours.n_splits_ == theirs.n_splits_
    if hasattr(theirs, "best_index_"):
        assert ours.best_index_ == theirs.best_index_
        assert ours.best_params_ == theirs.best_params_
    if hasattr(theirs, "best_score_"):
        assert abs(ours.best_score_ - theirs.best_score_) <= TOL
    if hasattr(theirs, "best_estimator_"):
        final_a, final_b = ours.best_estimator_, theirs.best_estimator_
        if isinstance(final_b, Pipeline):
            final_a, final_b = final_a[-1], final_b[-1]
        np.testing.assert_allclose(final_a.coef_, final_b.coef_, rtol=0, atol=TOL)
        assert ours.refit_time_ >= 0


def both(search_class, *args, **kwargs):
    """skgd's and scikit-learn's search of the same name, same arguments."""
    theirs = getattr(sk, search_class.__name__)
    return search_class(*args, **kwargs), theirs(*args, **kwargs)


def fit_both(search_class, X, y, *args, fit_params=None, **kwargs):
    ours, theirs = both(search_class, *args, **kwargs)
    ours.fit(X, y, **(fit_params or {}))
    theirs.fit(X, y, **(fit_params or {}))
    assert_same_search(ours, theirs)
    return ours, theirs


def clf(**params):
    return MinibatchSGDClassifier(max_iter=5, tol=None, random_state=0, **params)


GRIDS = {
    "eta0 x batch_size": ({"learning_rate": "invscaling"},
                          {"eta0": [0.01, 0.1], "batch_size": [1, 16]}),
    "learning_rate": ({"eta0": 0.05},
                      {"learning_rate": ["optimal", "invscaling", "adaptive", "constant"]}),
    "elasticnet": ({"penalty": "elasticnet"}, {"alpha": [1e-4, 1e-2], "l1_ratio": [0.15, 0.8]}),
    "average": ({}, {"average": [False, True, 10]}),
}


@pytest.mark.parametrize("grid", GRIDS, ids=list(GRIDS))
@pytest.mark.parametrize("data", ["binary", "binary-dense", "3-class", "regressor"])
def test_grids_equal_sklearn(grid, data, binary, three_class, regression):
    fixed, param_grid = GRIDS[grid]
    if data == "regressor":
        X, y = regression
        estimator = MinibatchSGDRegressor(max_iter=5, tol=None, random_state=0, **fixed)
    else:
        X, y = three_class if data == "3-class" else binary
        X = X.toarray() if data == "binary-dense" else X
        estimator = clf(**fixed)
    assert sp.issparse(X) == (data == "binary")
    fit_both(GridSearchCV, X, y, estimator, param_grid, cv=3)


def test_multimetric_refit_and_train_scores(binary):
    X, y = binary
    ours, _ = fit_both(GridSearchCV, X, y, clf(), {"alpha": [1e-5, 1e-3], "batch_size": [1, 8]},
                       scoring=["accuracy", "f1", "roc_auc"], refit="accuracy",
                       return_train_score=True, cv=3)
    assert ours.multimetric_ and "split2_train_f1" in ours.cv_results_


def test_refit_false_and_callable_refit(three_class):
    X, y = three_class
    grid = {"alpha": [1e-4, 1e-2], "average": [False, True]}
    fit_both(GridSearchCV, X, y, clf(), grid, scoring=["accuracy", "f1_macro"], refit=False, cv=3)
    fit_both(GridSearchCV, X, y, clf(), grid, cv=3,
             refit=lambda results: int(np.argmin(results["mean_test_score"])))


def test_callable_scoring_and_sample_weight(binary):
    X, y = binary
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    fit_both(GridSearchCV, X, y, clf(), {"alpha": [1e-4, 1e-2]}, cv=3,
             scoring=lambda est, X, y: {"acc": est.score(X, y), "one": 1.0}, refit="acc")
    fit_both(GridSearchCV, X, y, clf(), {"alpha": [1e-4, 1e-2]}, cv=3, scoring="accuracy",
             fit_params={"sample_weight": weights})


def test_randomized_search_equals_sklearn(three_class):
    X, y = three_class
    distributions = {"alpha": loguniform(1e-5, 1e-1), "l1_ratio": [0.1, 0.5, 0.9],
                     "average": [False, True]}
    fit_both(RandomizedSearchCV, X, y, clf(penalty="elasticnet"), distributions,
             n_iter=6, random_state=0, cv=StratifiedKFold(4, shuffle=True, random_state=1))


class CountingTfidf(TfidfVectorizer):
    """A TfidfVectorizer counting its fits (Pipeline.fit calls fit_transform)."""

    fits = []

    def fit_transform(self, raw_documents, y=None):
        CountingTfidf.fits.append(self.get_params()["sublinear_tf"])
        return super().fit_transform(raw_documents, y)


def test_pipeline_fits_earlier_steps_once_per_fold_and_setting(sms):
    X, y = sms
    pipe = Pipeline([("vec", CountingTfidf()), ("clf", clf())])
    grid = {"vec__sublinear_tf": [False, True], "clf__alpha": [1e-5, 1e-4, 1e-3]}
    ours, theirs = both(GridSearchCV, pipe, grid, cv=3, return_train_score=True)
    CountingTfidf.fits.clear()
    ours.fit(X, y)
    # 2 settings x 3 folds, and the refit; scikit-learn fits 6 x 3 + 1.
    assert len(CountingTfidf.fits) == 2 * 3 + 1
    assert sorted(CountingTfidf.fits[:-1]) == [False] * 3 + [True] * 3
    CountingTfidf.fits.clear()
    theirs.fit(X, y)
    assert len(CountingTfidf.fits) == 6 * 3 + 1
    assert_same_search(ours, theirs)
    # The shared vectorizer's time is split among its three candidates.
    assert np.all(ours.cv_results_["mean_fit_time"] > 0)


def test_metadata_routing_and_fit_params_fall_back_to_sklearn(sms):
    X, y = sms
    pipe = Pipeline([("vec", CountingTfidf()), ("clf", clf())])
    grid = {"clf__alpha": [1e-4, 1e-3]}
    with config_context(enable_metadata_routing=True):
        CountingTfidf.fits.clear()
        fit_both(GridSearchCV, X, y, pipe, grid, cv=3)
        # Each candidate's Pipeline fits its vectorizer, twice (two searches).
        assert len(CountingTfidf.fits) == 2 * (2 * 3 + 1)
    # A fit parameter routed to a Pipeline step: scikit-learn's search too.
    weights = np.linspace(0.5, 1.5, len(y))
    CountingTfidf.fits.clear()
    fit_both(GridSearchCV, X, y, pipe, grid, cv=3, fit_params={"clf__sample_weight": weights})
    assert len(CountingTfidf.fits) == 2 * (2 * 3 + 1)


def test_pipeline_replaced_passthrough_and_final_steps(sms):
    X, y = sms
    pipe = Pipeline([("vec", TfidfVectorizer()), ("scale", "passthrough"), ("clf", clf())])
    grid = [
        {"vec": [TfidfVectorizer(), CountVectorizer(binary=True)],
         "scale": ["passthrough", MaxAbsScaler()], "clf__alpha": [1e-4, 1e-3]},
        # Replacing the final step: scikit-learn's per-candidate path.
        {"clf": [LogisticRegression(C=10.0)], "scale": [MaxAbsScaler()]},
    ]
    fit_both(GridSearchCV, X, y, pipe, grid, cv=3, scoring=["accuracy", "f1_macro"], refit="f1_macro")


def test_non_skgd_estimator_is_sklearns_search(binary):
    X, y = binary
    ours, _ = fit_both(GridSearchCV, X, y, LogisticRegression(max_iter=200),
                       {"C": [0.1, 1.0, 10.0]}, cv=3)
    np.testing.assert_array_equal(ours.predict(X), ours.best_estimator_.predict(X))


def test_failing_candidates_get_error_score(binary, sms):
    X, y = binary
    grid = {"alpha": [1e-4, -1.0, 1e-2]}  # a negative alpha is refused by fit
    with pytest.warns(FitFailedWarning, match="3 fits failed out of a total of 9"):
        ours = GridSearchCV(clf(), grid, cv=3, error_score=np.nan).fit(X, y)
    with pytest.warns(FitFailedWarning):
        theirs = sk.GridSearchCV(clf(), grid, cv=3, error_score=np.nan).fit(X, y)
    assert_same_search(ours, theirs)
    assert np.isnan(ours.cv_results_["mean_test_score"][1])
    assert ours.cv_results_["rank_test_score"][1] == 3
    with pytest.raises(ValueError, match="alpha"):
        GridSearchCV(clf(), grid, cv=3, error_score="raise").fit(X, y)

    # A shared step failing fails all its candidates and only them.
    texts, labels = sms
    pipe = Pipeline([("vec", TfidfVectorizer()), ("clf", clf())])
    grid = {"vec__min_df": [1, 10_000], "clf__alpha": [1e-4, 1e-3]}
    with pytest.warns(FitFailedWarning, match="6 fits failed out of a total of 12"):
        ours = GridSearchCV(pipe, grid, cv=3, error_score=-1.0).fit(texts, labels)
    with pytest.warns(FitFailedWarning):
        theirs = sk.GridSearchCV(pipe, grid, cv=3, error_score=-1.0).fit(texts, labels)
    assert_same_search(ours, theirs)
    with pytest.raises(ValueError, match="min_df"):
        GridSearchCV(pipe, grid, cv=3, error_score="raise").fit(texts, labels)


def test_n_jobs_equals_serial(sms):
    X, y = sms
    pipe = Pipeline([("vec", TfidfVectorizer()), ("clf", clf(learning_rate="invscaling"))])
    grid = {"vec__sublinear_tf": [False, True], "clf__eta0": [0.01, 0.1, 1.0]}
    serial = GridSearchCV(pipe, grid, cv=KFold(3, shuffle=True, random_state=0)).fit(X, y)
    parallel = GridSearchCV(pipe, grid, cv=KFold(3, shuffle=True, random_state=0),
                            n_jobs=2).fit(X, y)
    assert_same_search(parallel, serial)


def test_verbose_messages(binary, capsys):
    X, y = binary
    GridSearchCV(clf(), {"alpha": [1e-4, 1e-3]}, cv=3, verbose=3).fit(X, y)
    out = capsys.readouterr().out
    assert "Fitting 3 folds for each of 2 candidates, totalling 6 fits" in out
    lines = [line for line in out.splitlines() if line.startswith("[CV 2/3] END ..")]
    assert len(lines) == 2 and lines[1].endswith(("s", "min"))
    assert sum(".alpha=0.001;, score=0." in line for line in lines) == 1


def test_fit_together_returns_fitted_estimators_or_errors(binary):
    X, y = binary
    estimators = [clf(alpha=1e-4), clf(alpha=-1.0), clf(alpha=1e-3)]
    results = fit_together(estimators, X, y)
    assert results[0] is estimators[0] and results[2] is estimators[2]
    assert isinstance(results[1], ValueError)
    expected = clf(alpha=1e-3).fit(X, y)
    np.testing.assert_array_equal(results[2].coef_, expected.coef_)


class CrossFitted(TransformerMixin, BaseEstimator):
    """A transformer whose fit_transform is not its transform (as
    TargetEncoder's cross-fitting): only transform negates the data."""

    def fit(self, X, y=None):
        self.fitted_ = True
        return self

    def fit_transform(self, X, y=None):
        return np.asarray(self.fit(X).fitted_ and X)

    def transform(self, X):
        return -np.asarray(X)


class Stateless(TransformerMixin, BaseEstimator):
    """A transformer learning nothing (so never looking fitted), counting
    the rows it transforms."""

    rows = []

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        Stateless.rows.append(len(X))
        return np.asarray(X) ** 3


def test_stateless_step_transforms_test_data_once_per_fold(three_class):
    X, y = three_class
    pipe = Pipeline([("cube", Stateless()), ("clf", clf())])
    ours, theirs = both(GridSearchCV, pipe, {"clf__alpha": [1e-4, 1e-3, 1e-2]}, cv=3)
    Stateless.rows.clear()
    ours.fit(X, y)
    # Per fold: the training data (fit_transform) and the test data, once.
    assert sorted(Stateless.rows[:-1]) == [100] * 3 + [200] * 3
    theirs.fit(X, y)
    assert_same_search(ours, theirs)


def test_train_scores_transform_training_data_as_pipeline_score(three_class):
    X, y = three_class
    pipe = Pipeline([("cross", CrossFitted()), ("clf", clf())])
    fit_both(GridSearchCV, X, y, pipe, {"clf__alpha": [1e-4, 1e-2]}, cv=3,
             return_train_score=True, scoring=["accuracy", "f1_macro"], refit="accuracy")


def printed_lines(search, X, y, capsys):
    """The lines a search's fit prints, times dropped, in sorted order."""
    capsys.readouterr()
    search.fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    return sorted(re.sub(r"total( time)?=.*", "", line) for line in lines)


@pytest.mark.parametrize("verbose", [2, 10])
def test_verbose_lines_equal_sklearn(verbose, three_class, capsys):
    X, y = three_class
    pipe = Pipeline([("scale", StandardScaler()), ("clf", clf())], verbose=verbose > 2)
    grid = {"scale__with_mean": [True, False], "clf__alpha": [1e-4, 1e-2]}
    ours, theirs = both(GridSearchCV, pipe, grid, cv=2, verbose=verbose, return_train_score=True)
    assert printed_lines(ours, X, y, capsys) == printed_lines(theirs, X, y, capsys)


@pytest.mark.parametrize("bad", ["clf__bogus", "scale__bogus"])
def test_invalid_parameter_name_raises_whatever_error_score(bad, three_class):
    X, y = three_class
    pipe = Pipeline([("scale", StandardScaler()), ("clf", clf())])
    grid = [{"clf__alpha": [1e-4]}, {bad: [1]}]
    for search in both(GridSearchCV, pipe, grid, cv=2, error_score=np.nan):
        with pytest.raises(ValueError, match="^Invalid parameter 'bogus'"):
            search.fit(X, y)
    with pytest.raises(ValueError, match="^Invalid parameter 'bogus'"):
        GridSearchCV(clf(), {"bogus": [1]}, cv=2).fit(X, y)


def test_no_candidates_raises_as_sklearn(three_class):
    X, y = three_class

    def run_search(self, evaluate_candidates, callback_ctx=None):
        evaluate_candidates([])

    for search in both(GridSearchCV, clf(), {"alpha": [1e-4]}, cv=2):
        subclass = type("Empty", (type(search),), {"_run_search": run_search})
        with pytest.raises(ValueError, match="No fits were performed"):
            subclass(clf(), {"alpha": [1e-4]}, cv=2).fit(X, y)


class ConfigSeen(TransformerMixin, BaseEstimator):
    """Records the scikit-learn config its fit sees."""

    seen = []

    def fit(self, X, y=None):
        ConfigSeen.seen.append(get_config()["assume_finite"])
        self.fitted_ = True
        return self

    def transform(self, X):
        return X


def test_parallel_tasks_see_the_callers_config(three_class):
    X, y = three_class
    pipe = Pipeline([("seen", ConfigSeen()), ("clf", clf())])
    ConfigSeen.seen.clear()
    with config_context(assume_finite=True):
        GridSearchCV(pipe, {"clf__alpha": [1e-4, 1e-3]}, cv=3, n_jobs=2).fit(X, y)
    assert ConfigSeen.seen == [True] * 4


@pytest.mark.parametrize("first", [KernelCenterer(), "passthrough"])
def test_pairwise_first_step_replaced_splits_as_sklearn(first, three_class):
    X, y = three_class
    kernel = X[:150] @ X[:150].T
    pipe = Pipeline([("center", first), ("clf", clf())])
    grid = {"center": [KernelCenterer(), "passthrough"], "clf__alpha": [1e-4, 1e-3]}
    fit_both(GridSearchCV, kernel, y[:150], pipe, grid, cv=3)


def test_steps_transforming_in_place_score_as_sklearn(regression):
    # StandardScaler(copy=False) scales the data it is given in place: each
    # candidate, scoring its Pipeline on raw data, must get data of its own.
    X, y = regression
    pipe = Pipeline([("scale", StandardScaler(copy=False)),
                     ("reg", MinibatchSGDRegressor(max_iter=5, tol=None, random_state=0))])
    grid = {"reg__alpha": [1e-4, 1e-3, 1e-2]}
    for scoring in [None, lambda est, X, y: est.score(X, y)]:
        ours, theirs = both(GridSearchCV, pipe, grid, cv=3, scoring=scoring,
                            return_train_score=True)
        ours.fit(X * 10 + 5, y)
        theirs.fit(X * 10 + 5, y)
        assert_same_search(ours, theirs)


def test_one_step_cap_warning_for_the_whole_search(binary):
    """Each fit whose steps the cap shortens warns; a search warns once, naming
    the candidates, and cv_results_['step_capped'] says which: those whose
    fits on the folds warn when run one by one."""
    import warnings

    from skgd import StepCapWarning

    X, y = binary
    est = MinibatchSGDClassifier(loss="log_loss", learning_rate="constant", alpha=1e-5,
                                 max_iter=3, tol=None, random_state=0)
    grid = {"eta0": [1e-3, 1.0, 10.0], "batch_size": [1, 32]}
    cv = list(KFold(3).split(X))
    alone = []
    for params in sk.ParameterGrid(grid):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            for train, _ in cv:
                est.set_params(**params)
                type(est)(**est.get_params()).fit(X[train], y[train])
        alone.append(any(issubclass(w.category, StepCapWarning) for w in said))
    assert 0 < sum(alone) < len(alone)  # the grid has both kinds
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        search = GridSearchCV(est.set_params(eta0=1e-3, batch_size=1), grid, cv=cv,
                              refit=False).fit(X, y)
    caps = [w for w in said if issubclass(w.category, StepCapWarning)]
    assert len(caps) == 1, [str(w.message)[:80] for w in caps]
    assert search.cv_results_["step_capped"].tolist() == alone
    assert f"steps of {sum(alone)} of {len(alone)} candidates" in str(caps[0].message)
    assert_same_search(search, sk.GridSearchCV(est, grid, cv=cv, refit=False).fit(X, y))
