"""The compiled engine against the plain NumPy reference, and its invariants."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from reference import reference_sgd
from sklearn.datasets import make_classification, make_regression

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor, _kernels, _training
from skgd import _smoothness as smoothness
from skgd.losses import MulticlassLoss, SquaredError
from skgd.schedules import optimal_init

N_EPOCHS = 3


def _sparsish(X, rng):
    X = X.copy()
    X[rng.rand(*X.shape) < 0.4] = 0.0  # real zeros, so CSR differs from dense
    return X


@pytest.fixture(scope="module")
def multiclass_data():
    rng = np.random.RandomState(0)
    X, y = make_classification(n_samples=60, n_features=6, n_informative=4,
                               n_classes=3, random_state=0)
    return _sparsish(X, rng), y


@pytest.fixture(scope="module")
def regression_data():
    rng = np.random.RandomState(1)
    X, y = make_regression(n_samples=50, n_features=5, noise=1.0, random_state=1)
    return _sparsish(X, rng), y / y.std()


def _ovr(y, classes):
    Y = -np.ones((y.size, classes.size))
    Y[np.arange(y.size), np.searchsorted(classes, y)] = 1.0
    return Y if classes.size > 2 else Y[:, 1:]


def _reference_for(est, X, Y, sw=None, auto_momentum=0.95):
    """The NumPy reference run of ``est``'s configuration (unshuffled,
    ``est.max_iter`` passes), from the estimator's parameters and the data's
    smoothness its state measured (``auto_momentum``: the most momentum
    'auto' takes on dense data, skgd.schedules.AUTO_MOMENTUM)."""
    loss = est._loss_object()
    params = loss.params()
    multiclass = isinstance(loss, MulticlassLoss)
    alpha = est.alpha
    l2 = l1 = 0.0
    if est.penalty == "l2":
        l2 = alpha
    elif est.penalty == "l1":
        l1 = alpha
    elif est.penalty == "elasticnet":
        l2, l1 = alpha * (1 - est.l1_ratio), alpha * est.l1_ratio
    pa_step = auto = lr = None
    X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
    row_sq = float((X ** 2).sum(axis=1).mean())
    if est.learning_rate == "auto":
        # momentum (at most 0.95) on dense data only (skgd.schedules), where
        # fewer than 20% of the values are zero (skgd._engine.SPARSE_DENSITY)
        auto = (row_sq + float(est.fit_intercept),
                auto_momentum if np.count_nonzero(X) >= 0.2 * X.size else 0.0)
    elif est.learning_rate in ("constant", "pa1", "pa2"):  # PA: eta0 is the decay's rate
        lr = lambda t: est.eta0  # noqa: E731
    elif est.learning_rate == "invscaling":
        lr = lambda t: est.eta0 / t ** est.power_t  # noqa: E731
    elif est.learning_rate == "optimal":
        # Bottou's heuristic reads the derivative at margin -typw: -1 for the
        # multiclass losses (skgd._base), as for hinge and log
        t0 = optimal_init(alpha, (lambda p, y: -1.0) if multiclass
                          else lambda p, y: loss.dloss(p, y, *params))
        lr = lambda t: 1.0 / (alpha * (t0 + t - 1))  # noqa: E731
    if est.learning_rate == "pa1":  # Crammer et al. 2006: min(C, loss / |x|^2)
        pa_step = lambda v, sq: min(est.eta0, v / sq) if sq > 0 else 0.0  # noqa: E731
    elif est.learning_rate == "pa2":  # loss / (|x|^2 + 1 / (2 C))
        pa_step = lambda v, sq: v / (sq + 1.0 / (2.0 * est.eta0))  # noqa: E731
    step_caps = None
    if loss.curvature and pa_step is None:  # passive-aggressive steps bound themselves
        lam_w, l_w, lam_b, l_b = est._state.smoothness
        if auto and loss.per_sample_floor:  # a bounded derivative: the mean row
            l_w = min(l_w, row_sq)
        if not loss.per_sample_floor:  # one cap, from the joint bound
            lam_w = lam_b = lam_w + lam_b
            l_w = l_b = l_w + l_b

        def cap(lam, l_max, m):  # no rows with mass: nothing to cap
            return 1.0 / (loss.curvature * (lam + l_max / m)) if l_max > 0 else np.inf

        step_caps = lambda m: (cap(lam_w, l_w, m), cap(lam_b, l_b, m))  # noqa: E731
    n_classes = None
    if multiclass:
        n_classes = est.classes_.size

        def dloss(p, y):
            out = np.empty(n_classes)
            loss.dloss(p, y, out, *params)
            return out
    else:
        def dloss(p, y):
            return loss.dloss(p, y, *params)
    n = X.shape[0]
    return reference_sgd(
        X, Y, np.ones(n) if sw is None else sw, [np.arange(n)] * est.max_iter,
        loss=lambda p, y: loss.loss(p, y, *params), dloss=dloss,
        lr=lr, l2=l2, l1=l1, batch_size=est.batch_size, clip_norm=est.clip_norm,
        clip_value=est.clip_value,
        # 'auto' always averages (from the start, unless an int says when)
        average_start=float(est.average) or float(auto is not None),
        fit_intercept=est.fit_intercept, step_caps=step_caps,
        cap_floor=loss.per_sample_floor and not auto, momentum=est.momentum,
        nesterov=est.nesterov, n_classes=n_classes, pa_step=pa_step, auto=auto,
    )


ENGINE_CONFIGS = [
    dict(batch_size=1),
    dict(batch_size=7),
    dict(batch_size=60),
    dict(batch_size=32, penalty="l1"),
    dict(batch_size=5, penalty="elasticnet", l1_ratio=0.5),
    dict(batch_size=4, average=True),
    dict(batch_size=3, average=17, penalty="elasticnet"),
    dict(batch_size=8, clip_norm=0.5),
    dict(batch_size=8, clip_value=0.05, penalty="l1"),
    dict(batch_size=1, clip_norm=0.1, average=True),
    dict(batch_size=1, alpha=2.0, eta0=0.1),  # decay folds the lazy scale
    dict(batch_size=2, alpha=2.0, eta0=0.1, average=True),
    dict(batch_size=6, learning_rate="optimal"),
    dict(batch_size=6, learning_rate="invscaling", eta0=0.2),
    dict(batch_size=6, fit_intercept=False, penalty=None),
    dict(batch_size=4, momentum=0.9),
    dict(batch_size=1, momentum=0.5, nesterov=True, penalty="elasticnet", average=True),
    dict(batch_size=8, momentum=0.8, nesterov=True, clip_norm=0.3, alpha=2.0, eta0=0.1),
]


@pytest.mark.parametrize("params", ENGINE_CONFIGS, ids=str)
@pytest.mark.parametrize("loss", ["hinge", "log_loss", "modified_huber"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_classifier_matches_reference(multiclass_data, params, loss, sparse):
    X, y = multiclass_data
    kw = dict(loss=loss, learning_rate="constant", eta0=0.05, alpha=0.01,
              max_iter=N_EPOCHS, tol=None, shuffle=False)
    kw.update(params)
    est = MinibatchSGDClassifier(**kw).fit(sp.csr_matrix(X) if sparse else X, y)
    W, b, avg, avg_b = _reference_for(est, X, _ovr(y, est.classes_))
    if avg is not None:
        W, b = avg, avg_b
    assert_allclose(est.coef_, W, rtol=1e-9, atol=1e-12)
    assert_allclose(est.intercept_, b, rtol=1e-9, atol=1e-12)
    assert est.t_ == 1 + N_EPOCHS * X.shape[0]


@pytest.mark.parametrize("params", ENGINE_CONFIGS[:10], ids=str)
@pytest.mark.parametrize("loss", ["squared_error", "huber", "epsilon_insensitive",
                                  "squared_epsilon_insensitive"])
def test_regressor_matches_reference(regression_data, params, loss):
    X, y = regression_data
    kw = dict(loss=loss, learning_rate="invscaling", eta0=0.02, alpha=0.01,
              max_iter=N_EPOCHS, tol=None, shuffle=False, epsilon=0.3)
    kw.update(params)
    est = MinibatchSGDRegressor(**kw).fit(sp.csr_matrix(X), y)
    W, b, avg, avg_b = _reference_for(est, X, y.reshape(-1, 1))
    if avg is not None:
        W, b = avg, avg_b
    assert_allclose(est.coef_, W.ravel(), rtol=1e-9, atol=1e-12)
    assert_allclose(est.intercept_, b, rtol=1e-9, atol=1e-12)


# the configurations whose schedule a test chooses
SCHEDULE_FREE = [params for params in ENGINE_CONFIGS if "learning_rate" not in params]


@pytest.mark.parametrize("params", SCHEDULE_FREE, ids=str)
@pytest.mark.parametrize("schedule", ["pa1", "pa2"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_passive_aggressive_classifier_matches_reference(multiclass_data, params, schedule,
                                                         sparse):
    X, y = multiclass_data
    kw = dict(loss="hinge", learning_rate=schedule, eta0=0.3, alpha=0.01,
              max_iter=N_EPOCHS, tol=None, shuffle=False)
    kw.update(params)
    est = MinibatchSGDClassifier(**kw).fit(sp.csr_matrix(X) if sparse else X, y)
    _assert_matches_reference(est, X, _ovr(y, est.classes_))


@pytest.mark.parametrize("params", SCHEDULE_FREE[:8], ids=str)
@pytest.mark.parametrize("schedule", ["pa1", "pa2"])
def test_passive_aggressive_regressor_matches_reference(regression_data, params, schedule):
    X, y = regression_data
    kw = dict(loss="epsilon_insensitive", learning_rate=schedule, eta0=0.1, alpha=0.01,
              epsilon=0.3, max_iter=N_EPOCHS, tol=None, shuffle=False)
    kw.update(params)
    est = MinibatchSGDRegressor(**kw).fit(X, y)
    _assert_matches_reference(est, X, y.reshape(-1, 1))


@pytest.mark.parametrize("params", ENGINE_CONFIGS, ids=str)
@pytest.mark.parametrize("loss", ["log_loss", "hinge"], ids=["softmax", "multiclass_hinge"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_multinomial_matches_reference(multiclass_data, params, loss, sparse):
    X, y = multiclass_data
    kw = dict(loss=loss, multi_class="multinomial", learning_rate="constant", eta0=0.05,
              alpha=0.01, max_iter=N_EPOCHS, tol=None, shuffle=False)
    kw.update(params)
    est = MinibatchSGDClassifier(**kw).fit(sp.csr_matrix(X) if sparse else X, y)
    # the multiclass losses read the class index
    _assert_matches_reference(est, X, np.searchsorted(est.classes_, y).reshape(-1, 1))


AUTO_CONFIGS = [params for params in SCHEDULE_FREE if "momentum" not in params]


@pytest.mark.parametrize("params", AUTO_CONFIGS, ids=str)
@pytest.mark.parametrize("loss", ["hinge", "log_loss", "modified_huber"])
@pytest.mark.parametrize("density", ["dense", "sparse"])
def test_auto_matches_reference(multiclass_data, params, loss, density):
    """'auto' (DoG steps, the caps, t^2-weighted averaging; with momentum
    where the data is dense) against the reference; on CSR input, and on
    data sparse enough that 'auto' takes no momentum."""
    X, y = multiclass_data
    if density == "sparse":  # about 15% non-zeros
        X = X * (np.random.RandomState(3).rand(*X.shape) < 0.25)
    kw = dict(loss=loss, learning_rate="auto", alpha=0.01, max_iter=N_EPOCHS, tol=None,
              shuffle=False)
    kw.update(params)
    est = MinibatchSGDClassifier(**kw).fit(sp.csr_matrix(X), y)
    _assert_matches_reference(est, X, _ovr(y, est.classes_))


@pytest.mark.parametrize("loss, params", [
    ("hinge", dict(batch_size=60)),
    ("hinge", dict(batch_size=32, penalty="l1")),
    ("hinge", dict(batch_size=32, average=300)),
    ("modified_huber", dict(batch_size=60)),
], ids=str)
def test_auto_momentum_matches_reference(multiclass_data, loss, params):
    """Large batches over 30 epochs, where the cap shortens the steps DoG
    wants and 'auto' makes up for them with momentum: the engine agrees
    with the reference, which without momentum would give another model."""
    X, y = multiclass_data
    est = MinibatchSGDClassifier(loss=loss, learning_rate="auto", alpha=0.01, max_iter=30,
                                 tol=None, shuffle=False, **params).fit(X, y)
    Y = _ovr(y, est.classes_)
    _assert_matches_reference(est, X, Y)
    without = _reference_for(est, X, Y, auto_momentum=0.0)
    assert not np.allclose(est.coef_, without[2], rtol=1e-3, atol=0.0)


def _assert_matches_reference(est, X, Y):
    W, b, avg, avg_b = _reference_for(est, X, Y)
    if avg is not None:
        W, b = avg, avg_b
    assert_allclose(est.coef_, W.reshape(est.coef_.shape), rtol=1e-9, atol=1e-12)
    assert_allclose(est.intercept_, b, rtol=1e-9, atol=1e-12)
    assert est.t_ == 1 + est.max_iter * X.shape[0]


SHUFFLED_CONFIGS = [
    dict(),
    dict(batch_size=1, penalty="l1"),
    dict(batch_size=16, penalty="elasticnet", average=True),
    dict(batch_size=8, clip_norm=1.0, clip_value=0.3),
    dict(batch_size=128, loss="log_loss", learning_rate="adaptive"),
]


@pytest.mark.parametrize("params", SHUFFLED_CONFIGS, ids=str)
def test_dense_and_csr_give_the_same_model(adult, params):
    X, y = adult[:2]
    X = X[:5000]
    y = y[:5000]
    kw = dict(max_iter=5, tol=None, random_state=0, **params)
    sparse = MinibatchSGDClassifier(**kw).fit(X, y)
    dense = MinibatchSGDClassifier(**kw).fit(X.toarray(), y)
    assert_allclose(dense.coef_, sparse.coef_, rtol=1e-8, atol=1e-10)
    assert_allclose(dense.intercept_, sparse.intercept_, rtol=1e-8, atol=1e-10)


def test_int64_and_int32_indices_give_identical_models(adult):
    X, y = adult[:2]
    assert X.indices.dtype == np.int64  # what load_svmlight_file returns
    X32 = X.copy()
    X32.indices = X32.indices.astype(np.int32)
    X32.indptr = X32.indptr.astype(np.int32)
    kw = dict(max_iter=3, tol=None, random_state=0, penalty="elasticnet")
    a = MinibatchSGDClassifier(**kw).fit(X, y)
    b = MinibatchSGDClassifier(**kw).fit(X32, y)
    assert_array_equal(a.coef_, b.coef_)
    assert_array_equal(a.intercept_, b.intercept_)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("Est", [MinibatchSGDClassifier, MinibatchSGDRegressor])
def test_float32_stays_float32(multiclass_data, sparse, Est):
    X, y = multiclass_data
    X32 = X.astype(np.float32)
    if sparse:
        X32 = sp.csr_matrix(X32)
    kw = dict(max_iter=20, tol=None, random_state=0, average=True)
    est32 = Est(**kw).fit(X32, y)
    est64 = Est(**kw).fit(X, y)
    assert est32.coef_.dtype == np.float32
    assert est32.intercept_.dtype == np.float32
    out = est32.decision_function(X32) if hasattr(est32, "decision_function") else est32.predict(X32)
    assert out.dtype == np.float32
    assert_allclose(est32.coef_, est64.coef_, rtol=1e-3, atol=1e-4)


def test_partial_fit_chunks_continue_the_same_pass(multiclass_data):
    """Chunks aligned on batch boundaries give exactly one pass of fit:
    the schedule's clock carries across partial_fit calls. (A loss without a
    step cap: a stream sees the data's smoothness chunk by chunk.)"""
    X, y = multiclass_data
    kw = dict(batch_size=5, learning_rate="invscaling", eta0=0.1, shuffle=False,
              average=True, penalty="elasticnet", loss="epsilon_insensitive")
    full = MinibatchSGDClassifier(max_iter=1, tol=None, **kw).fit(X, y)
    stream = MinibatchSGDClassifier(**kw)
    for start in range(0, X.shape[0], 20):
        stream.partial_fit(X[start:start + 20], y[start:start + 20], classes=np.unique(y))
    assert stream.t_ == full.t_ == 1 + X.shape[0]
    assert_allclose(stream.coef_, full.coef_, rtol=1e-12)
    assert_allclose(stream.intercept_, full.intercept_, rtol=1e-12)


def test_l1_gives_exact_zeros(reuters):
    X, y, Xt, yt = reuters
    l1 = MinibatchSGDClassifier(penalty="l1", alpha=1e-4, max_iter=5, tol=None,
                                random_state=0).fit(X, y)
    l2 = MinibatchSGDClassifier(penalty="l2", alpha=1e-4, max_iter=5, tol=None,
                                random_state=0).fit(X, y)
    # Features never seen keep weight 0 under any penalty; L1 zeroes many more.
    assert np.mean(l1.coef_ == 0) > np.mean(l2.coef_ == 0) + 0.3
    assert l1.score(Xt, yt) > 0.95


def test_clip_norm_bounds_the_step():
    rng = np.random.RandomState(0)
    X = 100 * rng.randn(40, 5)  # badly scaled: huge raw gradients
    y = X @ rng.randn(5)
    # epsilon_insensitive: piecewise linear, so no curvature cap interferes
    est = MinibatchSGDRegressor(loss="epsilon_insensitive", learning_rate="constant",
                                eta0=0.01, penalty=None, batch_size=40, clip_norm=0.5,
                                shuffle=False)
    est.partial_fit(X, y)  # one step of 40 samples from zero
    step = np.sqrt(np.sum(est.coef_ ** 2) + est.intercept_[0] ** 2)
    assert_allclose(step, 40 * 0.01 * 0.5, rtol=1e-10)


def test_clip_value_bounds_each_component():
    rng = np.random.RandomState(0)
    X = 100 * rng.randn(40, 5)
    y = X @ rng.randn(5)
    est = MinibatchSGDRegressor(loss="epsilon_insensitive", learning_rate="constant",
                                eta0=0.01, penalty=None, batch_size=40, clip_value=0.2,
                                shuffle=False)
    est.partial_fit(X, y)
    assert np.max(np.abs(est.coef_)) == pytest.approx(40 * 0.01 * 0.2, rel=1e-12)
    assert np.all(np.abs(est.coef_) <= 40 * 0.01 * 0.2 * (1 + 1e-12))


class _UncappedSquared(SquaredError):
    """Squared error that declares no curvature bound: no step cap."""

    curvature = None


def test_unclipped_training_explodes_where_clipping_does_not():
    rng = np.random.RandomState(0)
    X = 1000 * rng.randn(200, 5)
    y = X @ rng.randn(5)
    kw = dict(learning_rate="constant", eta0=0.01, max_iter=5, tol=None, random_state=0,
              loss=_UncappedSquared())
    with pytest.raises(ValueError, match=r"occurred at epoch #[1-5]\. .* Training diverged:"):
        MinibatchSGDRegressor(**kw).fit(X, y)
    clipped = MinibatchSGDRegressor(clip_norm=1.0, **kw).fit(X, y)
    assert np.all(np.isfinite(clipped.coef_))


def test_curvature_cap_keeps_squared_loss_stable_on_unscaled_data():
    """The same data and rate with the built-in squared error: the cap
    (1 / (curvature * L(m))) keeps every step stable, and it learns."""
    rng = np.random.RandomState(0)
    X = 1000 * rng.randn(200, 5)
    y = X @ rng.randn(5)
    est = MinibatchSGDRegressor(learning_rate="constant", eta0=0.01, max_iter=50,
                                tol=None, random_state=0, penalty=None).fit(X, y)
    assert est.score(X, y) > 0.99


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_smoothness_keeps_the_intercept_in_a_block_of_its_own(sparse):
    """(1/n) sum s_i x_i x_i^T = diag(4.5, 16) for these rows and weights:
    the weights' block has lam 16 and l_max 2 * 16; the intercept's has
    lam = mean(s) = 1.5 and l_max = max(s) = 2 (none without an intercept)."""
    X = np.array([[3.0, 0.0], [0.0, 4.0], [3.0, 0.0], [0.0, 4.0]])
    X = sp.csr_matrix(X) if sparse else X
    s = np.array([1.0, 2.0, 1.0, 2.0])
    rows = np.arange(4)
    def estimate(*args, **kwargs):
        return smoothness.estimate_with_trace(*args, **kwargs)[0]

    assert_allclose(estimate(X, rows, s, True), (16.0, 32.0, 1.5, 2.0), rtol=1e-9)
    assert_allclose(estimate(X, rows, s, False), (16.0, 32.0, 0.0, 0.0), rtol=1e-9)
    # a later chunk reuses the first chunk's eigenvalue
    assert estimate(X, rows[:1], s, True, lam_w=16.0) == (16.0, 9.0, 1.0, 1.0)
    # fewer rows than features: the eigenvalue comes from the Gram matrix
    wide = np.array([[3.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    wide = sp.csr_matrix(wide) if sparse else wide
    assert_allclose(estimate(wide, rows[:2], s, True), (16.0, 32.0, 1.5, 2.0),
                    rtol=1e-9)


@pytest.mark.parametrize("width", [None, 2**22], ids=["own width", "hashed width"])
def test_sparse_eigenvalue_matches_the_exact_one(reuters, width):
    """The compiled power iteration on a sparse sample (columns kept, or
    renumbered when X is far wider than the sample) agrees with the exact top
    eigenvalue of the same sample's weighted covariance."""
    X = reuters[0][:400]  # under the 500-row sample: every row is used
    if width is not None:  # the same rows spread over a hashed width
        X = sp.csr_matrix((X.data, X.indices * 397 % width, X.indptr), shape=(400, width))
        X.sort_indices()
    s = np.random.RandomState(0).uniform(0.5, 2.0, X.shape[0])
    rows = np.arange(X.shape[0])
    Z = sp.diags(np.sqrt(s)) @ X
    # Z Z^T (400 x 400) has the nonzero eigenvalues of Z^T Z
    exact = np.linalg.eigvalsh((Z @ Z.T).toarray())[-1] / X.shape[0]
    assert_allclose(smoothness.largest_eigenvalue(X, rows, s), exact, rtol=1e-3)


def test_large_hinge_batches_keep_the_intercept_near_the_margin(reuters):
    """Every row violates the margin at the start, and 'optimal' starts at a
    per-sample rate of about 10: uncapped, one step of 512 rows would move
    the intercept by about 4000. Its own cap keeps it within a few units."""
    X, y = reuters[:2]
    est = MinibatchSGDClassifier(batch_size=512, max_iter=1, tol=None, random_state=0)
    est.fit(X, y)
    assert abs(est.intercept_[0]) < 10


def test_sample_weight_scales_the_gradient(multiclass_data):
    X, y = multiclass_data
    kw = dict(learning_rate="constant", penalty=None, max_iter=2, tol=None, random_state=0)
    a = MinibatchSGDClassifier(eta0=0.02, **kw).fit(X, y, sample_weight=np.full(y.size, 2.0))
    b = MinibatchSGDClassifier(eta0=0.04, **kw).fit(X, y)
    assert_allclose(a.coef_, b.coef_, rtol=1e-10)


@pytest.mark.parametrize("multi_class", ["binary", "multinomial"])
def test_class_weight_is_a_per_class_sample_weight(multiclass_data, multi_class):
    """Binary and multinomial models weight each sample by its class's
    weight (one-vs-rest weights only each problem's positives: see
    tests/test_fidelity.py)."""
    X, y = multiclass_data
    if multi_class == "binary":
        y = (y == 1).astype(int)
    kw = dict(max_iter=3, tol=None, random_state=0,
              multi_class="multinomial" if multi_class == "multinomial" else "ovr",
              loss="log_loss")
    cw = {0: 0.5, 1: 2.0, 2: 1.0}
    a = MinibatchSGDClassifier(class_weight=cw, **kw).fit(X, y)
    b = MinibatchSGDClassifier(**kw).fit(X, y, sample_weight=np.vectorize(cw.get)(y))
    assert_allclose(a.coef_, b.coef_, rtol=1e-12)
    # 'balanced' on an imbalanced subset equals its computed weights.
    keep = np.r_[np.flatnonzero(y == 0)[:5], np.flatnonzero(y != 0)]
    Xi, yi = X[keep], y[keep]
    counts = np.bincount(yi)
    balanced = MinibatchSGDClassifier(class_weight="balanced", **kw).fit(Xi, yi)
    manual = MinibatchSGDClassifier(**kw).fit(
        Xi, yi, sample_weight=(yi.size / (counts.size * counts))[yi])
    assert_allclose(balanced.coef_, manual.coef_, rtol=1e-12)
    assert not np.allclose(balanced.coef_, MinibatchSGDClassifier(**kw).fit(Xi, yi).coef_)


def test_warm_start_continues_from_the_last_solution(multiclass_data):
    X, y = multiclass_data
    kw = dict(max_iter=2, tol=None, random_state=0)
    first = MinibatchSGDClassifier(**kw).fit(X, y)
    warm = MinibatchSGDClassifier(warm_start=True, **kw).fit(X, y).fit(X, y)
    explicit = MinibatchSGDClassifier(**kw).fit(
        X, y, coef_init=first.coef_, intercept_init=first.intercept_)
    assert_allclose(warm.coef_, explicit.coef_, rtol=1e-12)
    cold = MinibatchSGDClassifier(**kw).fit(X, y).fit(X, y)
    assert_allclose(cold.coef_, first.coef_, rtol=1e-12)  # fit without warm start restarts


def test_same_random_state_same_model_and_shuffling_matters(adult):
    X, y = adult[:2]
    kw = dict(max_iter=2, tol=None)
    a = MinibatchSGDClassifier(random_state=3, **kw).fit(X, y)
    b = MinibatchSGDClassifier(random_state=3, **kw).fit(X, y)
    c = MinibatchSGDClassifier(random_state=4, **kw).fit(X, y)
    assert_array_equal(a.coef_, b.coef_)
    assert not np.allclose(a.coef_, c.coef_)


def test_early_stopping_stops_and_records_scores(adult):
    X, y = adult[:2]
    est = MinibatchSGDClassifier(early_stopping=True, max_iter=200, random_state=0).fit(X, y)
    assert est.n_iter_ < 200
    assert len(est.validation_scores_) == est.n_iter_ == len(est.loss_curve_)
    assert est.best_score_ == max(est.validation_scores_) > 0.8
    assert np.all(np.isfinite(est.loss_curve_))


def test_multiclass_trains_all_classes_in_one_pass_like_separate_binary_fits(multiclass_data):
    """One-vs-rest in one pass equals K separate binary fits on the same order."""
    X, y = multiclass_data
    kw = dict(max_iter=3, tol=None, shuffle=False, learning_rate="constant", eta0=0.05,
              batch_size=4)
    joint = MinibatchSGDClassifier(**kw).fit(X, y)
    for k, c in enumerate(joint.classes_):
        binary = MinibatchSGDClassifier(**kw).fit(X, np.where(y == c, 1, -1))
        assert_allclose(joint.coef_[k], binary.coef_[0], rtol=1e-10)
        assert_allclose(joint.intercept_[k], binary.intercept_[0], rtol=1e-10)


def _wide_chunks(n_features, n_chunks, seed=0, rows=250, nnz=30):
    rng = np.random.RandomState(seed)
    chunks = []
    for _ in range(n_chunks):
        cols = rng.randint(n_features, size=(rows, nnz))
        X = sp.csr_matrix((rng.rand(rows * nnz), cols.ravel(), np.arange(0, rows * nnz + 1, nnz)),
                          shape=(rows, n_features))
        X.sum_duplicates()
        y = (np.asarray(X[:, : n_features // 2].sum(axis=1)).ravel() > 7).astype(int)
        chunks.append((X, y))
    return chunks


WIDE_CONFIGS = [
    (MinibatchSGDClassifier, dict()),
    (MinibatchSGDClassifier, dict(loss="log_loss", average=True, penalty="elasticnet")),
    (MinibatchSGDClassifier, dict(batch_size=32, clip_norm=1.0, penalty="l1")),
    (MinibatchSGDClassifier, dict(loss="log_loss", multi_class="multinomial", batch_size=8)),
    (MinibatchSGDRegressor, dict(average=10)),
]


@pytest.mark.parametrize("Est, params", WIDE_CONFIGS, ids=str)
def test_streaming_on_a_wide_model_allocates_what_its_data_needs(Est, params):
    """A partial_fit call (and a predict) on a 2^22-feature model touches
    250 x 30 non-zeros: the memory it allocates must follow them, not the
    width. One copy of the weights, one scratch array or one finiteness scan
    of width n_features (all 32 MiB here) fails this; no timing involved."""
    import tracemalloc

    n_features = 2**22
    chunks = _wide_chunks(n_features, 4)
    est = Est(random_state=0, **params)
    kw = {"classes": [0, 1]} if Est is MinibatchSGDClassifier else {}
    for X, y in chunks[:2]:  # the model, its scratch and the compiled pass
        est.partial_fit(X, y, **kw)
    width_bytes = n_features * 8
    X, y = chunks[2]
    tracemalloc.start()
    try:
        est.partial_fit(X, y, **kw)
        _, peak_fit = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        est.predict(chunks[3][0])
        _, peak_predict = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_fit < 0.05 * width_bytes, peak_fit
    assert peak_predict < 0.05 * width_bytes, peak_predict
    assert est.t_ == 1 + 3 * 250


@pytest.mark.parametrize("params", [
    dict(batch_size=32, loss="log_loss"),
    dict(learning_rate="constant", eta0=10.0, batch_size=64),
    dict(learning_rate="adaptive", eta0=0.01, batch_size=8, penalty="l1"),
    dict(learning_rate="auto", average=True),
], ids=str)
def test_compiled_helpers_are_called_through_numba_fast_dispatch(monkeypatch, params):
    """Once compiled, no call from Python into a numba function may take the
    dispatcher's slow path (``_compile_for_args``, ~65 us a call): a call
    leaving a default argument out takes it every time (it did, once an
    epoch). Counted, not timed."""
    from numba.core.dispatcher import Dispatcher

    X, y = make_classification(n_samples=300, n_features=8, random_state=0)
    X[X < 0] = 0.0
    for data in (X, sp.csr_matrix(X)):
        est = MinibatchSGDClassifier(max_iter=4, tol=None, random_state=0, **params)
        est.fit(data, y).partial_fit(data, y)  # compile (and warn) first
        slow = []
        original = Dispatcher._compile_for_args

        def spy(self, *args, _original=original, **kwargs):
            slow.append(self.py_func.__name__)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Dispatcher, "_compile_for_args", spy)
        est.fit(data, y).partial_fit(data, y)
        est.predict(data)
        monkeypatch.undo()
        assert slow == []


def test_a_training_call_reads_each_row_norm_once(monkeypatch):
    """Validation's finiteness check, the step caps and 'auto' read X's row
    norms: one pass computes them per call (on dense data each pass reads
    all of X), and no later call reuses them, so data changed in place in
    between is seen afresh."""
    X, y = make_classification(n_samples=200, n_features=5, random_state=0)
    passes = []
    original = smoothness._dense_row_sq

    def counted(A):
        passes.append(A.shape)
        return original(A)

    monkeypatch.setattr(smoothness, "_dense_row_sq", counted)
    est = MinibatchSGDClassifier(learning_rate="auto", batch_size=32, max_iter=2, tol=None,
                                 random_state=0)
    est.fit(X, y)
    assert passes == [X.shape]
    X[:] = 0.0  # changed in place: the next call must read it again
    est.partial_fit(X, y)
    assert passes == [X.shape, X.shape]


def test_a_failed_journaled_call_restores_exactly_what_it_changed(monkeypatch):
    """The CSR stream's undo journal: a call that fails after its pass (here
    a divergence check forced to fail) leaves every array byte-identical."""
    n_features = 2**12
    chunks = _wide_chunks(n_features, 3, rows=60, nnz=10)
    est = MinibatchSGDClassifier(random_state=0, loss="log_loss", average=True,
                                 penalty="elasticnet", batch_size=4)
    for X, y in chunks[:2]:
        est.partial_fit(X, y, classes=[0, 1])
    before = {k: v.copy() for k, v in vars(est._state).items() if isinstance(v, np.ndarray)}
    calls = []

    def failing_check(state, objective, epoch, **kwargs):
        calls.append(state)
        raise ValueError("forced")

    monkeypatch.setattr(_training, "check_finite", failing_check)
    with pytest.raises(ValueError, match="forced"):
        est.partial_fit(*chunks[2])
    assert calls, "the pass ran before the failure"
    after = {k: v for k, v in vars(est._state).items() if isinstance(v, np.ndarray)}
    assert before.keys() == after.keys()
    for name in before:
        assert before[name].tobytes() == after[name].tobytes(), name


def test_weights_exploding_while_finite_are_reported_and_undone():
    """A squared loss without a curvature bound (no step cap) on features of
    1e4: each step multiplies the error by about 500, so one 40-row chunk
    takes the weights from about 1 to about 1e100, still finite. That is
    divergence; the call is refused and undone."""
    rng = np.random.RandomState(0)
    X = rng.randn(40, 5)
    y = X @ rng.randn(5)
    est = MinibatchSGDRegressor(loss=_UncappedSquared(), learning_rate="constant", eta0=1e-6,
                                penalty=None, shuffle=False)
    for _ in range(3):
        est.partial_fit(X, y)  # stable at this scale
    before = est.coef_.copy()
    with pytest.raises(ValueError, match=r"occurred at epoch #1\. .* Training diverged: the weights grew by a factor"):
        est.partial_fit(X * 1e4, y * 1e4)
    assert_array_equal(est.coef_, before)


def _sparse_problem():
    rng = np.random.RandomState(0)
    X = sp.csr_matrix(rng.randn(200, 8) * (rng.rand(200, 8) < 0.5))
    return X, (np.asarray(X.sum(axis=1)).ravel() > 0).astype(int)


def test_switching_averaging_off_leaves_no_lazy_sum_to_correct():
    """With averaging dropped mid-stream, the clipping and L1 steps must not
    correct an averaging sum that no longer exists (they would write outside
    an empty array): the state's lazy-sum coefficient is reset with it."""
    X, y = _sparse_problem()
    est = MinibatchSGDClassifier(penalty="l1", average=True, clip_norm=1.0, batch_size=4,
                                 random_state=0)
    est.partial_fit(X, y, classes=[0, 1])
    est.partial_fit(X, y)
    assert est._state.clock[_kernels.AVG_B] != 0.0  # a lazy sum in use
    est.set_params(average=False)
    est.partial_fit(X, y)
    assert est._state.avg_coef.shape == (0, 0)
    assert est._state.clock[_kernels.AVG_B] == 0.0
    assert est._state.clock[_kernels.AVG_CHECK] == 0.0


def test_a_failed_call_after_assigning_coef_restores_the_training_state(monkeypatch):
    X, y = _sparse_problem()
    target = np.asarray(X.sum(axis=1)).ravel()
    est = MinibatchSGDRegressor(random_state=0).partial_fit(X, target)
    before = {k: v.copy() for k, v in vars(est._state).items() if isinstance(v, np.ndarray)}
    est.coef_ = np.ones(8)

    def failing_check(*args, **kwargs):
        raise ValueError("forced")

    monkeypatch.setattr(_training, "check_finite", failing_check)
    with pytest.raises(ValueError, match="forced"):
        est.partial_fit(X, target)
    for name, value in before.items():
        assert getattr(est._state, name).tobytes() == value.tobytes(), name
    assert_array_equal(est.coef_, np.ones(8))  # still what the user assigned


def test_published_weights_do_not_change_with_later_parameters():
    """As scikit-learn's: coef_ and predictions stay those of the last
    training call when ``average`` is changed afterwards."""
    X, y = _sparse_problem()
    est = MinibatchSGDClassifier(average=True, random_state=0, max_iter=5, tol=None).fit(X, y)
    coef = est.coef_.copy()
    est.set_params(average=False)
    assert_array_equal(est.coef_, coef)
    assert_allclose(est.decision_function(X), X @ coef.ravel() + est.intercept_)


def test_assigned_coef_is_where_training_continues():
    X, y = _sparse_problem()
    kw = dict(max_iter=1, tol=None, random_state=0, learning_rate="constant", eta0=1e-12,
              penalty=None)
    warm = MinibatchSGDClassifier(warm_start=True, **kw).fit(X, y)
    warm.coef_ = np.full((1, 8), 3.0)
    assert_allclose(warm.fit(X, y).coef_, 3.0, atol=1e-6)
    stream = MinibatchSGDClassifier(**kw).partial_fit(X, y, classes=[0, 1])
    stream.coef_ = np.full((1, 8), 3.0)
    assert_allclose(stream.partial_fit(X, y).coef_, 3.0, atol=1e-6)
