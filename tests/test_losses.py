"""The public loss contract, multinomial training and gradient checking."""

import numpy as np
import pytest
import scipy.sparse as sp
from custom_losses import HalfSquared, Pinball, UserLog, WrongLog, WrongSoftmax
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor, check_gradient
from skgd.losses import (
    CLASSIFICATION_LOSSES,
    Huber,
    MulticlassHinge,
    SoftmaxLoss,
)


@pytest.mark.parametrize("name", sorted(CLASSIFICATION_LOSSES))
def test_check_gradient_passes_for_every_builtin(name):
    assert check_gradient(name) < 1e-6


@pytest.mark.parametrize("loss", [SoftmaxLoss(), MulticlassHinge(), Huber(epsilon=2.0),
                                  Pinball(quantile=0.9)], ids=repr)
def test_check_gradient_passes_for_multiclass_and_parametrised_losses(loss):
    assert check_gradient(loss, n_classes=6) < 1e-6


@pytest.mark.parametrize("wrong", [WrongLog(), WrongSoftmax()], ids=repr)
def test_check_gradient_catches_a_wrong_derivative(wrong):
    with pytest.raises(AssertionError, match=rf"{type(wrong).__name__}.*relative error.*at p="):
        check_gradient(wrong)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return train_test_split(X, y, test_size=0.25, random_state=0)


def _softmax_objective(X, y, coef, intercept, alpha):
    S = X @ coef.T + intercept
    S = S - S.max(axis=1, keepdims=True)
    return (np.mean(np.log(np.exp(S).sum(axis=1)) - S[np.arange(y.size), y])
            + 0.5 * alpha * float((coef ** 2).sum()))


def test_multinomial_log_loss_reaches_logistic_regression(digits):
    X_train, X_test, y_train, y_test = digits
    alpha = 1e-2
    exact = LogisticRegression(C=1 / (alpha * y_train.size), tol=1e-10,
                               max_iter=10_000).fit(X_train, y_train)
    best = _softmax_objective(X_train, y_train, exact.coef_, exact.intercept_, alpha)
    clf = MinibatchSGDClassifier(loss="log_loss", multi_class="multinomial", alpha=alpha,
                                 average=True, learning_rate="constant", eta0=0.003,
                                 max_iter=100, tol=None, random_state=0).fit(X_train, y_train)
    ours = _softmax_objective(X_train, y_train, clf.coef_, clf.intercept_, alpha)
    assert best * (1 - 1e-9) <= ours <= best * (1 + 1e-2)
    assert np.mean(clf.predict(X_test) == exact.predict(X_test)) >= 0.97
    proba = clf.predict_proba(X_test)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X_test))
    # the softmax of the scores, as LogisticRegression(multinomial) computes it
    assert np.mean(np.abs(proba - exact.predict_proba(X_test))) < 0.02


def test_multinomial_hinge_on_digits(digits):
    X_train, X_test, y_train, y_test = digits
    clf = MinibatchSGDClassifier(loss="hinge", multi_class="multinomial", average=True,
                                 max_iter=50, tol=None, random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.93
    assert not hasattr(clf, "predict_proba")


def test_multinomial_with_two_classes_publishes_one_row(digits):
    X_train, _, y_train, _ = digits
    mask = y_train < 2
    clf = MinibatchSGDClassifier(loss="log_loss", multi_class="multinomial",
                                 random_state=0).fit(X_train[mask], y_train[mask])
    assert clf.coef_.shape == (1, X_train.shape[1])
    assert clf.decision_function(X_train[mask]).shape == (mask.sum(),)
    assert clf.score(X_train[mask], y_train[mask]) > 0.99


def test_multi_class_and_loss_must_fit_together():
    X = np.random.RandomState(0).randn(30, 3)
    y = np.arange(30) % 3
    with pytest.raises(ValueError, match="multinomial.*log_loss.*hinge.*modified_huber"):
        MinibatchSGDClassifier(loss="modified_huber", multi_class="multinomial").fit(X, y)
    with pytest.raises(ValueError, match="MulticlassLoss: it needs multi_class='multinomial'"):
        MinibatchSGDClassifier(loss=SoftmaxLoss()).fit(X, y)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_a_user_loss_equal_to_a_builtin_gives_the_same_model(digits, sparse):
    X_train, _, y_train, _ = digits
    X = sp.csr_matrix(X_train) if sparse else X_train
    y = (y_train > 4).astype(int)
    kw = dict(max_iter=5, tol=None, random_state=0, batch_size=8, penalty="elasticnet")
    ours = MinibatchSGDClassifier(loss=UserLog(), **kw).fit(X, y)
    builtin = MinibatchSGDClassifier(loss="log_loss", **kw).fit(X, y)
    assert_allclose(ours.coef_, builtin.coef_, rtol=1e-12)
    assert_allclose(ours.intercept_, builtin.intercept_, rtol=1e-12)
    reg = MinibatchSGDRegressor(loss=HalfSquared(), **kw).fit(X, y_train.astype(float))
    ref = MinibatchSGDRegressor(loss="squared_error", **kw).fit(X, y_train.astype(float))
    assert_allclose(reg.coef_, ref.coef_, rtol=1e-12)


def test_parametrised_user_loss_works_with_clone_and_grid_search():
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 1, (600, 1))
    y = 2 * X[:, 0] + rng.randn(600) * (0.1 + X[:, 0])
    reg = MinibatchSGDRegressor(loss=Pinball(quantile=0.9), learning_rate="constant",
                                eta0=0.05, max_iter=30, tol=None, random_state=0)
    assert clone(reg).get_params()["loss__quantile"] == 0.9
    fitted = reg.fit(X, y)
    assert 0.85 < np.mean(y <= fitted.predict(X)) < 0.95
    search = GridSearchCV(reg, {"loss__quantile": [0.2, 0.8]}, cv=2).fit(X, y)
    assert search.best_estimator_.loss.quantile in (0.2, 0.8)
    assert len(search.cv_results_["params"]) == 2


# ------------------------------------------------------------------ issue 26
# The softmax derivative summed its exponentials in the loop that stores them
# into ``out``. It inherited the compiled pass's ``reassoc`` (numba's rule for
# a function without fastmath flags of its own), so LLVM vectorised that sum
# behind a run-time test of the two addresses: with ``out`` less than a few
# vectors (256 bytes with AVX-512) after the scores the scalar loop ran,
# summing in order, otherwise the vector loop, summing in lanes. Where malloc
# put the pass's scratch rows decided which, and the same seed gave another
# multinomial model from one fit to the next. Each test places the scores and
# the derivatives itself, so it fails (or passes) the same way every run.

def _placements(n):
    """``(scores, out)`` views of one buffer, with ``out`` right after the
    scores (the scalar loop of the old code), before them and far after them
    (its vector loop); never overlapping."""
    start = 4 * n + 64
    layouts = []
    for offset in (n, n + 4, -n - 4, 1000):
        buffer = np.full(start + 1000 + 2 * n, np.nan)
        layouts.append((buffer[start:start + n],
                        buffer[start + offset:start + offset + n]))
    return layouts


def _score_rows(n, count=40):
    rng = np.random.RandomState(n)
    return rng.randn(count, n) * 3.0


@pytest.mark.parametrize("n_classes", [4, 5, 10, 13])
def test_softmax_derivatives_of_a_pass_do_not_depend_on_where_its_rows_lie(n_classes):
    # skgd._kernels.row_losses is the step of the compiled passes (inlined in
    # sgd_pass and in its threaded rows) that scores a row and calls the loss
    from skgd import _kernels as K
    from skgd._loss_kernels import BuiltinLoss

    n_features = 3
    X = (np.ones((1, n_features)),)
    coef = np.zeros((n_classes, n_features))
    Y = np.zeros((1, 1))
    report = np.zeros(5)
    for row, intercept in enumerate(_score_rows(n_classes)):
        Y[0, 0] = row % n_classes
        results = []
        for scores, out in _placements(n_classes):
            values = np.full(n_classes, np.nan)
            K.row_losses(X, Y, 0, coef, intercept, 1.0, None, BuiltinLoss("softmax"), (),
                         scores, out, values, report)
            results.append(out.copy())
        for other in results[1:]:
            assert_array_equal(other, results[0])


def test_softmax_derivative_keeps_its_own_fastmath_flags():
    # The same function through a fresh dispatcher with the real one's options,
    # first compiled from a caller with the passes' fastmath: what a pass
    # compiled into its code, whatever else in this process compiled the
    # function before (and nothing written to numba's cache).
    import numba

    from skgd import losses as L
    from skgd._jit import _JIT

    options = {k: v for k, v in L._dsoftmax_loss.targetoptions.items() if k != "cache"}
    fresh = numba.njit(**options)(L._dsoftmax_loss.py_func)

    @numba.njit(**dict(_JIT, cache=False))
    def call(p, y, out):
        fresh(p, y, out)

    n = 10
    for row, p in enumerate(_score_rows(n)):
        results = []
        for scores, out in _placements(n):
            scores[:] = p
            call(scores, row % n, out)
            results.append(out.copy())
        for other in results[1:]:
            assert_array_equal(other, results[0])
