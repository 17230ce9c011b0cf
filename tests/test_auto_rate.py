"""learning_rate='auto': near the exact optimum in 50 epochs at any batch
size, and as accurate as the best of a grid of constant rates, with nothing
to tune (issue 15). Exact optima from LogisticRegression and Ridge."""

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from test_fidelity import _sms_stream_accuracy

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor


def _logistic(X, y, coef, intercept, alpha):
    z = y * (X @ coef.ravel() + intercept[0])
    return np.mean(np.logaddexp(0.0, -z)) + 0.5 * alpha * float(coef.ravel() @ coef.ravel())


def _ridge(X, y, coef, intercept, alpha):
    r = X @ coef.ravel() + intercept[0] - y
    return 0.5 * np.mean(r * r) + 0.5 * alpha * float(coef.ravel() @ coef.ravel())


def _softmax(X, y, coef, intercept, alpha):
    scores = X @ coef.T + intercept
    rows = np.arange(y.size)
    return (np.mean(logsumexp(scores, axis=1) - scores[rows, y])
            + 0.5 * alpha * float((coef * coef).sum()))


def _digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _problem(name, adult, abalone):
    """X, y, objective, exact optimum's value, skgd estimator of the issue."""
    if name == "adult":
        X, y = adult[:2]
        alpha = 1e-4
        exact = LogisticRegression(C=1.0 / (alpha * X.shape[0]), tol=1e-10, max_iter=10_000)
        exact.fit(X, y)
        best = _logistic(X, y, exact.coef_, exact.intercept_, alpha)
        return X, y, _logistic, alpha, best, MinibatchSGDClassifier(loss="log_loss")
    if name == "abalone":
        X, y = abalone
        alpha = 1e-3
        exact = Ridge(alpha=alpha * X.shape[0]).fit(X, y)
        best = _ridge(X, y, exact.coef_, np.atleast_1d(exact.intercept_), alpha)
        return X, y, _ridge, alpha, best, MinibatchSGDRegressor()
    X, y = _digits()
    alpha = 1e-3
    exact = LogisticRegression(C=1.0 / (alpha * X.shape[0]), tol=1e-10, max_iter=20_000)
    exact.fit(X, y)
    best = _softmax(X, y, exact.coef_, exact.intercept_, alpha)
    return X, y, _softmax, alpha, best, MinibatchSGDClassifier(loss="log_loss",
                                                               multi_class="multinomial")


# The targets. Digits at batch 256 takes 7 steps an epoch, held by
# the step cap: momentum carries them to a gap of 0.002 after 50 epochs
# (measured, seeds 0-4; it was 0.24 while the short last batch of each pass
# reset the momentum, and 0.011 with momentum at most 0.9).
TARGETS = [
    ("adult", 1, 1e-3), ("adult", 32, 1e-3), ("adult", 256, 1e-3),
    ("abalone", 1, 1e-3), ("abalone", 32, 1e-3), ("abalone", 256, 1e-3),
    ("digits", 1, 1e-2), ("digits", 32, 1e-2), ("digits", 256, 1e-2),
]


@pytest.mark.parametrize("name, batch_size, target", TARGETS)
def test_auto_reaches_the_exact_optimum(name, batch_size, target, adult, abalone):
    X, y, objective, alpha, best, est = _problem(name, adult, abalone)
    est.set_params(learning_rate="auto", average=True, alpha=alpha, batch_size=batch_size,
                   max_iter=50, tol=None, random_state=0).fit(X, y)
    ours = objective(X, y, est.coef_, est.intercept_, alpha)
    assert ours >= best * (1 - 1e-9)  # the exact optimum really is optimal
    assert (ours - best) / best <= target, (ours - best) / best


def _mean_score(make, X, y, Xt, yt, seeds=range(3)):
    return float(np.mean([make(s).fit(X, y).score(Xt, yt) for s in seeds]))


def _sets(name, adult, reuters, abalone):
    if name == "abalone":
        X, y = abalone
        X, Xt, y, yt = train_test_split(X, y, test_size=0.25, random_state=0)
        return X, y, Xt, yt, MinibatchSGDRegressor, {}
    X, y, Xt, yt = adult if name == "adult" else reuters
    return X, y, Xt, yt, MinibatchSGDClassifier, {"loss": "log_loss"}


@pytest.mark.parametrize("name", ["adult", "reuters", "abalone"])
def test_auto_needs_no_grid_search(name, adult, reuters, abalone):
    """One fit with 'auto' (other arguments default) scores within 0.003 of
    the best constant rate over eta0 in 1e-4 ... 10 (3-seed means)."""
    X, y, Xt, yt, cls, kw = _sets(name, adult, reuters, abalone)
    auto = _mean_score(lambda s: cls(learning_rate="auto", random_state=s, **kw), X, y, Xt, yt)
    grid = [_mean_score(lambda s: cls(learning_rate="constant", eta0=eta0, random_state=s,
                                      **kw), X, y, Xt, yt)
            for eta0 in (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)]
    best = max(v for v in grid if np.isfinite(v))
    assert auto >= best - 0.003, (auto, grid)


def test_auto_multiclass_hinge_on_digits():
    X, y = _digits()
    scores = []
    for seed in range(5):
        X1, X2, y1, y2 = train_test_split(X, y, test_size=0.25, random_state=seed)
        est = MinibatchSGDClassifier(loss="hinge", multi_class="multinomial",
                                     learning_rate="auto", random_state=seed)
        scores.append(est.fit(X1, y1).score(X2, y2))
    assert np.mean(scores) >= 0.94, scores


@pytest.mark.xfail(strict=True, reason=(
    "missed target: one pass, 10-seed means, 'auto' 0.9761 against the default's 0.9768 "
    "(0.940 against 0.940 after the first chunk; paired difference -0.0006 +- 0.0016, "
    "over 30 seeds -0.0007 +- 0.0007): with its reach at the L2 bound, the step cap "
    "holds the stream's steps (3.7 per sample against the default's 17 to 10)"))
def test_auto_streams_sms_spam_as_well_as_the_default():
    """One pass of 500-row partial_fit chunks of HashingVectorizer(2**20)
    features: 'auto' at least as accurate as the default schedule
    (10-seed means)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    from skgd.datasets import load_sms_spam

    texts, labels = load_sms_spam()
    X = HashingVectorizer(n_features=2**20).transform(texts)
    auto = np.array([_sms_stream_accuracy(MinibatchSGDClassifier, "log_loss", s, X, labels,
                                          learning_rate="auto") for s in range(10)])
    default = np.array([_sms_stream_accuracy(MinibatchSGDClassifier, "log_loss", s, X, labels)
                        for s in range(10)])
    assert auto[:, -1].mean() >= default[:, -1].mean(), (auto.mean(0), default.mean(0))


def test_auto_refuses_momentum():
    with pytest.raises(ValueError, match="sets its own momentum"):
        MinibatchSGDClassifier(learning_rate="auto", momentum=0.5).fit([[0.0], [1.0]], [0, 1])
