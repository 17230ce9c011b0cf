"""Reliability (issue 6): clear errors, atomic updates, honest divergence,
reproducibility, safe persistence, thread safety, and property-based checks.

Each section below tests one promise of docs/reliability.rst.
"""

import concurrent.futures
import copy
import io
import pickle
import re
import sys
import threading
import time
from collections import namedtuple

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError

import skgd.losses
from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor
from skgd._step_caps import check_finite

# fit's max_iter rule warns on these small problems; that is documented behaviour
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

N, D = 40, 3
_rng = np.random.RandomState(0)
X = _rng.randn(N, D)
Y = {"clf": np.arange(N) % 3, "reg": X @ [1.0, -2.0, 0.5] + 0.1 * _rng.randn(N)}
EST = {"clf": MinibatchSGDClassifier, "reg": MinibatchSGDRegressor}
CLASSES = [0, 1, 2]


def _kind(est):
    return "clf" if isinstance(est, MinibatchSGDClassifier) else "reg"


def _partial_fit(est, X, y, **kwargs):
    if _kind(est) == "clf" and "classes" not in kwargs and not hasattr(est, "classes_"):
        kwargs["classes"] = CLASSES
    return est.partial_fit(X, y, **kwargs)


def _momentum(kind):
    """Momentum, where this version has it (its velocity is training state)."""
    return {"momentum": 0.5} if "momentum" in EST[kind]().get_params() else {}


def _stateful(kind, **params):
    """A model with every kind of training state: averaging sums, the L1
    ledger, momentum, a schedule that has advanced, a loss curve of several
    calls."""
    params = {**_momentum(kind), **params}
    est = EST[kind](random_state=0, average=True, penalty="elasticnet", **params)
    for rows in np.array_split(np.arange(N), 2):
        _partial_fit(est, X[rows], Y[kind][rows])
    return est


def _snapshot(est):
    """Everything a model is made of, to compare bit for bit."""
    snap = {"pickle": pickle.dumps(est)}
    for name in ("coef_", "intercept_", "t_", "n_iter_", "loss_curve_", "classes_"):
        if name in vars(est):
            snap[name] = copy.deepcopy(vars(est)[name])
    if hasattr(est, "_state"):
        for name, value in vars(est._state).items():
            if isinstance(value, np.ndarray):
                snap["_state." + name] = value.copy()
    return snap


def _assert_unchanged(est, before):
    after = _snapshot(est)
    assert after.keys() == before.keys()
    for name, old in before.items():
        new = after[name]
        if isinstance(old, np.ndarray):
            assert (old.dtype, old.shape) == (new.dtype, new.shape), name
            assert old.tobytes() == new.tobytes(), f"{name} changed"
        else:
            assert pickle.dumps(old) == pickle.dumps(new), f"{name} changed"


# ------------------------------------------------------------ 1. clear errors
#
# One row per bad input: which estimators ("clf", "reg") and which calls it
# applies to, the input, the exception and a regex its message must match.
# Calls: "fit" on a new estimator, "warm" a warm-start fit of a fitted one,
# "pf" a first partial_fit, "pf_fitted" partial_fit of a fitted model. After
# every failed call the estimator must be exactly as it was.

Bad = namedtuple("Bad", "name kinds calls make exc match")
BOTH = ("clf", "reg")
ALL_CALLS = ("fit", "warm", "pf", "pf_fitted")
FITS = ("fit", "warm")
PARTIALS = ("pf", "pf_fitted")


def _X_with(value, at=(5, 1)):
    A = X.copy()
    A[at] = value
    return A


def _y_with(kind, value, at=5, dtype=float):
    y = Y[kind].astype(dtype)
    y[at] = value
    return y


def _sw_with(value, at=3):
    sw = np.ones(N)
    sw[at] = value
    return sw


def _strings_X():
    A = X.astype(str)
    A[5, 1] = "abc"
    return A


def _objects_X():
    A = X.astype(object)
    A[5, 1] = {"not": "a number"}
    return A


def _coef_init(kind, value):
    return np.full((3, D) if kind == "clf" else (D,), value)


BAD_DATA = [
    Bad("nan_in_X", BOTH, ALL_CALLS, lambda k: dict(X=_X_with(np.nan)),
        ValueError, r"Input X contains NaN"),
    Bad("inf_in_X", BOTH, ALL_CALLS, lambda k: dict(X=_X_with(np.inf)),
        ValueError, r"Input X contains infinity"),
    Bad("minus_inf_in_X", BOTH, ALL_CALLS, lambda k: dict(X=_X_with(-np.inf)),
        ValueError, r"Input X contains infinity"),
    Bad("nan_in_sparse_X", BOTH, ALL_CALLS, lambda k: dict(X=sp.csr_matrix(_X_with(np.nan))),
        ValueError, r"Input X contains NaN"),
    Bad("huge_X", BOTH, ALL_CALLS, lambda k: dict(X=X * 1e200),
        ValueError, r"X has values too large to train on \(largest magnitude .*e\+200\).*"
                    r"Scale the features"),
    Bad("strings_in_X", BOTH, ALL_CALLS, lambda k: dict(X=_strings_X()),
        ValueError, r"could not convert string to float: .*abc"),
    Bad("objects_in_X", BOTH, ALL_CALLS, lambda k: dict(X=_objects_X()),
        TypeError, r"float\(\) argument must be .* not 'dict'"),
    Bad("complex_X", BOTH, ALL_CALLS, lambda k: dict(X=X + 1j),
        ValueError, r"Complex data not supported"),
    Bad("1d_X", BOTH, ALL_CALLS, lambda k: dict(X=X[:, 0]),
        ValueError, r"Expected 2D array, got 1D array"),
    Bad("3d_X", BOTH, ALL_CALLS, lambda k: dict(X=X[:, :, None]),
        ValueError, r"Found array with dim 3"),
    Bad("empty_X", BOTH, ALL_CALLS, lambda k: dict(X=X[:0], y=Y[k][:0]),
        ValueError, r"Found array with 0 sample\(s\)"),
    Bad("X_without_features", BOTH, ALL_CALLS, lambda k: dict(X=X[:, :0]),
        ValueError, r"0 feature"),
    Bad("X_y_length_mismatch", BOTH, ALL_CALLS, lambda k: dict(y=Y[k][:-1]),
        ValueError, r"inconsistent numbers of samples: \[40, 39\]"),
    Bad("2d_y", BOTH, ALL_CALLS, lambda k: dict(y=np.c_[Y[k], Y[k]]),
        ValueError, r"y should be a 1d array"),
    Bad("nan_in_y", BOTH, ALL_CALLS, lambda k: dict(y=_y_with(k, np.nan)),
        ValueError, r"Input y contains NaN"),
    Bad("inf_in_y", BOTH, ALL_CALLS, lambda k: dict(y=_y_with(k, np.inf)),
        ValueError, r"Input y contains infinity"),
    Bad("none_in_regression_y", ("reg",), ALL_CALLS,
        lambda k: dict(y=_y_with(k, None, dtype=object)),
        ValueError, r"Input y contains nan at index 5 \(a missing value such as None"),
    Bad("none_in_class_labels", ("clf",), FITS + ("pf",),
        lambda k: dict(y=_y_with(k, None, dtype=object)),
        ValueError, r"Unknown label type"),
    Bad("none_in_class_labels_of_a_stream", ("clf",), ("pf_fitted",),
        lambda k: dict(y=_y_with(k, None, dtype=object)),
        ValueError, r"labels not in `classes`: \[None\]"),
    Bad("strings_as_regression_y", ("reg",), ALL_CALLS,
        lambda k: dict(y=np.array(["a"] * N)),
        ValueError, r"could not convert string to float"),
    Bad("continuous_y_for_classifier", ("clf",), FITS + ("pf",),
        lambda k: dict(y=Y["reg"]),
        ValueError, r"Unknown label type: continuous"),
    Bad("wrong_feature_count", BOTH, ("pf_fitted",), lambda k: dict(X=np.ones((N, D + 1))),
        ValueError, r"X has 4 features, but Minibatch\w+ is expecting 3 features"),
    Bad("wrong_feature_count_sparse", BOTH, ("pf_fitted",),
        lambda k: dict(X=sp.csr_matrix(np.ones((N, D + 1)))),
        ValueError, r"X has 4 features, but Minibatch\w+ is expecting 3 features"),
    Bad("label_not_in_classes", ("clf",), PARTIALS, lambda k: dict(y=_y_with(k, 7, dtype=int)),
        ValueError, r"labels not in `classes`: \[7\] \(classes are \[0, 1, 2\]\)"),
    Bad("first_partial_fit_without_classes", ("clf",), ("pf",), lambda k: dict(classes=None),
        ValueError, r"classes must be passed on the first call to partial_fit"),
    Bad("classes_changed_mid_stream", ("clf",), ("pf_fitted",),
        lambda k: dict(classes=[0, 1, 2, 3]),
        ValueError, r"`classes=\[0, 1, 2, 3\]` is not the same as on the first call"),
    Bad("classes_not_1d", ("clf",), ("pf",), lambda k: dict(classes=[[0, 1], [2, 3]]),
        ValueError, r"classes must be a 1-d array-like of labels; got shape \(2, 2\)"),
    Bad("nan_in_classes", ("clf",), ("pf",), lambda k: dict(classes=[0, 1, 2, np.nan]),
        ValueError, r"classes must be finite"),
    Bad("single_class_in_fit", ("clf",), FITS, lambda k: dict(y=np.zeros(N, dtype=int)),
        ValueError, r"number of classes has to be greater than one; got 1 class"),
    Bad("single_class_in_classes", ("clf",), ("pf",),
        lambda k: dict(y=np.zeros(N, dtype=int), classes=[0]),
        ValueError, r"number of classes has to be greater than one; got 1 class"),
    Bad("sample_weight_wrong_length", BOTH, ALL_CALLS, lambda k: dict(sample_weight=np.ones(N - 1)),
        ValueError, r"sample_weight.shape == \(39,\), expected \(40,\)"),
    Bad("sample_weight_2d", BOTH, ALL_CALLS, lambda k: dict(sample_weight=np.ones((N, 1))),
        ValueError, r"sample_weight.shape == \(40, 1\), expected \(40,\)"),
    Bad("negative_sample_weight", BOTH, ALL_CALLS, lambda k: dict(sample_weight=_sw_with(-1.0)),
        ValueError, r"sample_weight must be finite and non-negative; got -1.0 at index 3"),
    Bad("nan_sample_weight", BOTH, ALL_CALLS, lambda k: dict(sample_weight=_sw_with(np.nan)),
        ValueError, r"sample_weight must be finite and non-negative; got nan at index 3"),
    Bad("inf_sample_weight", BOTH, ALL_CALLS, lambda k: dict(sample_weight=_sw_with(np.inf)),
        ValueError, r"sample_weight must be finite and non-negative; got inf at index 3"),
    Bad("negative_scalar_sample_weight", BOTH, ALL_CALLS, lambda k: dict(sample_weight=-2.0),
        ValueError, r"sample_weight must be finite and non-negative; got -2.0"),
    Bad("all_zero_sample_weight", BOTH, ALL_CALLS, lambda k: dict(sample_weight=np.zeros(N)),
        ValueError, r"sample_weight is zero for every sample"),
    Bad("string_sample_weight", BOTH, ALL_CALLS, lambda k: dict(sample_weight=["a"] * N),
        ValueError, r"sample_weight must be real numbers"),
    Bad("sparse_sample_weight", BOTH, ALL_CALLS,
        lambda k: dict(sample_weight=sp.csr_matrix(np.ones((N, 1)))),
        TypeError, r"sample_weight must be a 1-d array-like .* not a sparse matrix"),
    Bad("negative_class_weight", ("clf",), ALL_CALLS,
        lambda k: dict(params=dict(class_weight={0: -1.0})),
        ValueError, r"class_weight must be finite and non-negative; got -1.0 for class 0"),
    Bad("nan_class_weight", ("clf",), ALL_CALLS,
        lambda k: dict(params=dict(class_weight={1: np.nan})),
        ValueError, r"class_weight must be finite and non-negative; got nan for class 1"),
    Bad("balanced_class_weight_in_partial_fit", ("clf",), PARTIALS,
        lambda k: dict(params=dict(class_weight="balanced")),
        ValueError, r"class_weight 'balanced' is not supported for partial_fit"),
    Bad("early_stopping_in_partial_fit", BOTH, PARTIALS,
        lambda k: dict(params=dict(early_stopping=True)),
        ValueError, r"early_stopping should be False with partial_fit"),
    Bad("too_few_samples_for_early_stopping", ("clf",), FITS,
        lambda k: dict(X=X[:2], y=Y[k][:2], params=dict(early_stopping=True)),
        ValueError, r"Splitting 2 samples into a train set and a validation set"),
    Bad("nan_coef_init", BOTH, FITS, lambda k: dict(coef_init=_coef_init(k, np.nan)),
        ValueError, r"coef_init must be finite; got nan at index \(0, 0\)"),
    Bad("inf_intercept_init", BOTH, FITS, lambda k: dict(intercept_init=[np.inf] * (3 if k == "clf" else 1)),
        ValueError, r"intercept_init must be finite; got inf"),
    Bad("coef_init_wrong_shape", BOTH, FITS, lambda k: dict(coef_init=np.zeros((2, D + 1))),
        ValueError, r"coef_init has shape \(2, 4\); expected"),
]

# Every invalid hyper-parameter: (parameter, value, estimators). The message
# names the parameter and the value it got.
INVALID_PARAMS = [
    ("batch_size", 0, BOTH), ("batch_size", -1, BOTH), ("batch_size", 2.5, BOTH),
    ("batch_size", "8", BOTH), ("batch_size", None, BOTH), ("batch_size", True, BOTH),
    ("clip_norm", 0.0, BOTH), ("clip_norm", -1.0, BOTH), ("clip_norm", np.nan, BOTH),
    ("clip_norm", "x", BOTH),
    ("clip_value", 0.0, BOTH), ("clip_value", -1.0, BOTH), ("clip_value", np.nan, BOTH),
    ("loss", "nope", BOTH), ("loss", None, BOTH), ("loss", 3, BOTH),
    ("loss", skgd.losses.Hinge, BOTH),  # the class, not an instance
    ("loss", "hinge", ("reg",)), ("loss", "log_loss", ("reg",)),
    ("penalty", "l3", BOTH), ("penalty", "none", BOTH),
    ("alpha", -1.0, BOTH), ("alpha", np.nan, BOTH), ("alpha", np.inf, BOTH),
    ("l1_ratio", 2.0, BOTH), ("l1_ratio", -0.1, BOTH),
    ("fit_intercept", "yes", BOTH), ("fit_intercept", 1, BOTH),
    ("max_iter", 0, BOTH), ("max_iter", 2.5, BOTH),
    ("tol", -1.0, BOTH), ("tol", np.nan, BOTH),
    ("shuffle", "x", BOTH),
    ("verbose", -1, BOTH),
    ("epsilon", -1.0, BOTH), ("epsilon", np.nan, BOTH),
    ("random_state", "x", BOTH), ("random_state", -1, BOTH),
    ("learning_rate", "fast", BOTH), ("learning_rate", "pa3", BOTH),
    ("eta0", 0.0, BOTH), ("eta0", -1.0, BOTH), ("eta0", np.nan, BOTH), ("eta0", np.inf, BOTH),
    ("power_t", np.nan, BOTH), ("power_t", np.inf, BOTH),
    ("early_stopping", "x", BOTH),
    ("validation_fraction", 0.0, BOTH), ("validation_fraction", 1.0, BOTH),
    ("n_iter_no_change", 0, BOTH),
    ("warm_start", "x", BOTH),
    ("average", -1, BOTH), ("average", 1.5, BOTH),
    ("n_jobs", "x", ("clf",)), ("n_jobs", 1.5, ("clf",)),
    ("class_weight", "x", ("clf",)), ("class_weight", 3, ("clf",)),
    ("multi_class", "softmax", ("clf",)), ("multi_class", None, ("clf",)),
    ("momentum", -0.1, BOTH), ("momentum", 1.0, BOTH), ("momentum", np.nan, BOTH),
    ("nesterov", "x", BOTH),
]


def _has(kind, param):
    return param in EST[kind]().get_params()


def test_every_hyper_parameter_has_invalid_values_in_the_table():
    listed = {param for param, _, _ in INVALID_PARAMS}
    for kind in BOTH:
        missing = set(EST[kind]().get_params()) - listed
        assert not missing, f"no invalid value tested for {sorted(missing)}"


BAD_PARAMS = [
    Bad(f"{param}={value!r}", tuple(k for k in kinds if _has(k, param)), ALL_CALLS,
        (lambda param, value: lambda k: dict(params={param: value}))(param, value),
        ValueError, rf"'{param}' parameter of Minibatch\w+ must be .*Got {re.escape(repr(value))}")
    for param, value, kinds in INVALID_PARAMS
] + [
    Bad("alpha=0_with_optimal_schedule", BOTH, ALL_CALLS,
        lambda k: dict(params=dict(alpha=0.0, learning_rate="optimal")),
        ValueError, r"alpha must be > 0 since learning_rate is 'optimal'"),
    Bad("elasticnet_without_l1_ratio", BOTH, ALL_CALLS,
        lambda k: dict(params=dict(penalty="elasticnet", l1_ratio=None)),
        ValueError, r"l1_ratio must be set when penalty is 'elasticnet'"),
]


def _cases(table):
    return [
        pytest.param(kind, call, case, id=f"{kind}-{call}-{case.name}")
        for case in table
        for kind in case.kinds
        for call in case.calls
    ]


def _target(kind, call):
    """The estimator a call of the table is made on."""
    if call == "warm":
        return EST[kind](warm_start=True, random_state=0, average=True,
                         penalty="elasticnet", max_iter=3, tol=None).fit(X, Y[kind])
    if call == "pf_fitted":
        return _stateful(kind)
    return EST[kind](random_state=0)


def _call(est, call, X, y, kwargs):
    if call in FITS:
        return est.fit(X, y, **kwargs)
    kwargs = dict(kwargs)
    if _kind(est) == "clf" and call == "pf":
        kwargs.setdefault("classes", CLASSES)
    if kwargs.get("classes", 0) is None:
        del kwargs["classes"]
    return est.partial_fit(X, y, **kwargs)


@pytest.mark.parametrize("kind, call, case", _cases(BAD_DATA) + _cases(BAD_PARAMS))
def test_bad_input_is_refused_clearly_and_changes_nothing(kind, call, case):
    spec = case.make(kind)
    est = _target(kind, call)
    est.set_params(**spec.pop("params", {}))
    bad_X, bad_y = spec.pop("X", X), spec.pop("y", Y[kind])
    if call in FITS:
        spec.pop("classes", None)
    before = _snapshot(est)
    with pytest.raises(case.exc, match=case.match):
        _call(est, call, bad_X, bad_y, spec)
    _assert_unchanged(est, before)


PREDICT_BAD_X = [
    ("nan", _X_with(np.nan), ValueError, r"Input X contains NaN"),
    ("inf", _X_with(np.inf), ValueError, r"Input X contains infinity"),
    ("strings", _strings_X(), ValueError, r"could not convert string to float"),
    ("complex", X + 1j, ValueError, r"Complex data not supported"),
    ("1d", X[:, 0], ValueError, r"Expected 2D array, got 1D array"),
    ("3d", X[:, :, None], ValueError, r"Found array with dim 3"),
    ("empty", X[:0], ValueError, r"Found array with 0 sample\(s\)"),
    ("too_many_features", np.ones((5, D + 1)), ValueError,
     r"X has 4 features, but Minibatch\w+ is expecting 3 features"),
    ("too_few_features_sparse", sp.csr_matrix(np.ones((5, D - 1))), ValueError,
     r"X has 2 features, but Minibatch\w+ is expecting 3 features"),
]
METHODS = [("clf", "predict"), ("clf", "decision_function"), ("clf", "predict_proba"),
           ("clf", "score"), ("reg", "predict"), ("reg", "score")]


@pytest.mark.parametrize("kind, method", METHODS)
@pytest.mark.parametrize("name, bad_X, exc, match", PREDICT_BAD_X, ids=[c[0] for c in PREDICT_BAD_X])
def test_bad_input_at_prediction(kind, method, name, bad_X, exc, match):
    est = _stateful(kind, loss="log_loss") if kind == "clf" else _stateful(kind)
    args = (bad_X, Y[kind][: bad_X.shape[0]]) if method == "score" else (bad_X,)
    before = _snapshot(est)
    with pytest.raises(exc, match=match):
        getattr(est, method)(*args)
    _assert_unchanged(est, before)


def _int64_csr(A):
    A = sp.csr_matrix(A)
    A.indices, A.indptr = A.indices.astype(np.int64), A.indptr.astype(np.int64)
    return A


UNUSUAL_BUT_VALID = [  # (name, X, dtype of the weights)
    ("csr_int64_indices", _int64_csr(X), np.float64),  # what load_svmlight_file returns
    ("csc", sp.csc_matrix(X), np.float64),
    ("coo", sp.coo_matrix(X), np.float64),
    ("lists", X.tolist(), np.float64),
    ("ints", np.round(X * 10).astype(np.int64), np.float64),
    ("float16", X.astype(np.float16), np.float64),
    ("float32", X.astype(np.float32), np.float32),
    ("fortran_order", np.asfortranarray(X), np.float64),
    ("strided_view", np.repeat(X, 2, axis=1)[:, ::2], np.float64),
    ("all_zero", np.zeros((N, D)), np.float64),
]


@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize("name, Xv, dtype", UNUSUAL_BUT_VALID, ids=[c[0] for c in UNUSUAL_BUT_VALID])
def test_unusual_but_valid_input_is_accepted(kind, name, Xv, dtype):
    """The other side of clear errors: no error for input that is valid."""
    est = EST[kind](random_state=0, max_iter=5, tol=None).fit(Xv, Y[kind], sample_weight=[1.0] * N)
    assert est.coef_.dtype == dtype and np.isfinite(est.coef_).all()
    assert est.predict(Xv).shape == (N,)
    _partial_fit(est, Xv, Y[kind], sample_weight=2.0)
    assert np.isfinite(est.coef_).all()


def test_labels_of_any_type_are_accepted():
    for labels in (np.array(["spam", "ham"])[np.arange(N) % 2], np.arange(N) % 2 == 0,
                   (np.arange(N) % 2).astype(float) * 3 - 1):
        clf = MinibatchSGDClassifier(random_state=0, max_iter=5, tol=None).fit(X, labels)
        assert_array_equal(clf.classes_, np.unique(labels))
        assert clf.predict(X).dtype == labels.dtype
        clf.partial_fit(X, labels)
        stream = MinibatchSGDClassifier(random_state=0)
        stream.partial_fit(X, labels, classes=np.unique(labels))
        assert_array_equal(stream.classes_, np.unique(labels))


INTEGER_LABELS = [
    np.array([127, -128], dtype=np.int8),  # the type's whole range
    np.array([2**63 + 5, 2**63 + 1], dtype=np.uint64),  # beyond int64
    np.array([-(2**62), 2**40]),  # too far apart to count: sorted instead
    np.array([7, 3], dtype=np.uint8),
]


@pytest.mark.parametrize("pair", INTEGER_LABELS, ids=lambda p: str(p.dtype))
def test_integer_labels_keep_their_values_and_type(pair):
    """fit counts small-range integer labels instead of sorting them: the
    classes, their type and the predictions are np.unique's all the same."""
    labels = pair[np.arange(N) % 2]
    clf = MinibatchSGDClassifier(random_state=0, max_iter=5, tol=None).fit(X, labels)
    assert_array_equal(clf.classes_, np.unique(labels))
    assert clf.classes_.dtype == labels.dtype
    same = MinibatchSGDClassifier(random_state=0, max_iter=5, tol=None).fit(
        X, np.arange(N) % 2 == (np.argsort(pair)[1]))
    assert_array_equal(clf.decision_function(X), same.decision_function(X))
    assert set(clf.predict(X)) <= set(pair.tolist())


@pytest.mark.parametrize("kind, method", METHODS)
def test_predicting_before_fitting_raises_not_fitted(kind, method):
    est = EST[kind](loss="log_loss") if kind == "clf" else EST[kind]()
    args = (X, Y[kind]) if method == "score" else (X,)
    with pytest.raises(NotFittedError, match=r"not fitted yet"):
        getattr(est, method)(*args)


# --------------------------------------------------- 2. nothing lost on failure


class Uncapped(skgd.losses.SquaredError):
    """Squared error without the curvature bound: no step cap, so unscaled
    data makes training overflow."""

    curvature = None


class Broken(skgd.losses.Loss):
    """A loss without its compiled functions: fails when training starts."""


DIVERGED = (r"Floating-point under-/overflow occurred at epoch #\d+\. Scaling input data with "
            r"StandardScaler or MinMaxScaler might help\. Training diverged: .*; lowering "
            r"eta0 or setting clip_norm may help too\.")


def _diverging(kind, **params):
    return EST[kind](loss=Uncapped(), learning_rate="constant", eta0=0.01, **params)


@pytest.mark.parametrize("kind", BOTH)
def test_divergence_raises_and_names_the_epoch(kind):
    with pytest.raises(ValueError, match=DIVERGED) as info:
        _diverging(kind, random_state=0).fit(X * 1e3, Y[kind])
    assert int(re.search(r"epoch #(\d+)", str(info.value)).group(1)) >= 1


@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize("call", ["pf_fitted", "warm", "pf"])
def test_divergence_leaves_the_model_as_it_was(kind, call):
    if call == "pf_fitted":
        est = _diverging(kind, random_state=0, average=True, penalty="elasticnet")
        _partial_fit(est, X, Y[kind])
        _partial_fit(est, X, Y[kind])
    elif call == "warm":
        est = _diverging(kind, random_state=0, average=True, penalty="l1",
                         warm_start=True, max_iter=3, tol=None).fit(X, Y[kind])
    else:  # a first call: the estimator must stay unfitted
        est = _diverging(kind, random_state=np.random.RandomState(0))
    before = _snapshot(est)
    with pytest.raises(ValueError, match=DIVERGED):
        if call == "warm":
            est.fit(X * 1e3, Y[kind])
        else:
            _partial_fit(est, X * 1e3, Y[kind])
    _assert_unchanged(est, before)
    if call == "pf":
        assert not hasattr(est, "coef_")


@pytest.mark.parametrize("kind", BOTH)
def test_failing_loss_leaves_the_model_as_it_was(kind):
    est = _stateful(kind)
    est.set_params(loss=Broken())
    before = _snapshot(est)
    with pytest.raises(TypeError, match=r"Broken must define `loss` and `dloss`"):
        _partial_fit(est, X, Y[kind])
    _assert_unchanged(est, before)


@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize("call", ["pf_fitted", "warm"])
def test_interrupted_training_leaves_the_model_as_it_was(kind, call, monkeypatch):
    """An exception from inside the epoch loop (here a KeyboardInterrupt in
    the third pass) after state has already been trained on."""
    from skgd import _engine

    real, passes = _engine.Pass.run, []

    def interrupted(*args, **kwargs):
        passes.append(1)
        if len(passes) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    rs = np.random.RandomState(1)  # drawn from by a new state: must be restored too
    if call == "warm":
        est = EST[kind](warm_start=True, random_state=rs, average=True, max_iter=4,
                        tol=None).fit(X, Y[kind])
    else:
        est = _stateful(kind)
    before = _snapshot(est)
    monkeypatch.setattr(_engine.Pass, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        if call == "warm":
            est.fit(X, Y[kind])
        else:
            for _ in range(3):
                _partial_fit(est, X, Y[kind])
    monkeypatch.undo()
    if call == "pf_fitted":  # the two calls that completed are kept, exactly
        expected = _stateful(kind)
        _partial_fit(expected, X, Y[kind])
        _partial_fit(expected, X, Y[kind])
        before = _snapshot(expected)
    _assert_unchanged(est, before)


def test_check_finite_covers_the_averaged_weights():
    """Averaging sums that overflowed would publish non-finite weights even
    with finite raw weights: the divergence check looks at every array."""
    est = _stateful("reg")
    state = est._state.copy()
    state.avg_coef[...] = np.inf
    with pytest.raises(ValueError, match=r"occurred at epoch #7\. Scaling input data"):
        check_finite(state, 0.0, 7)


# ------------------------------------------------ 3. huge margins, float32


@pytest.mark.parametrize("scale", [1e6, 1e12])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("multi_class", ["ovr", "multinomial"])
def test_log_loss_stays_finite_for_huge_margins(scale, dtype, multi_class):
    if "multi_class" not in MinibatchSGDClassifier().get_params():
        if multi_class != "ovr":
            pytest.skip("this version has no multi_class parameter (softmax)")
        extra = {}
    else:
        extra = {"multi_class": multi_class}
    Xs = (X * scale).astype(dtype)
    y = np.argmax(X @ np.random.RandomState(1).randn(D, 3), axis=1)  # separable classes
    clf = MinibatchSGDClassifier(loss="log_loss", random_state=0, max_iter=10, tol=None,
                                 **extra).fit(Xs, y)
    assert clf.coef_.dtype == dtype
    assert np.isfinite(clf.coef_).all() and np.isfinite(clf.intercept_).all()
    assert np.isfinite(clf.loss_curve_).all()
    proba = clf.predict_proba(Xs)
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    # the margins really are huge, and the model still separates the data
    assert np.abs(clf.decision_function(Xs)).max() > 1e3
    assert clf.score(Xs, y) > 0.8
    clf.partial_fit(Xs, y)  # and keeps training
    assert np.isfinite(clf.coef_).all()


@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize("batch_size", [1, 16])
def test_float32_with_large_values_trains(kind, batch_size):
    Xs = (X * 1e15).astype(np.float32)  # squares (1e30) near float32's limit
    est = EST[kind](random_state=0, max_iter=5, tol=None, batch_size=batch_size)
    est.fit(Xs, Y[kind])
    assert est.coef_.dtype == np.float32
    assert np.isfinite(est.coef_).all()
    pred = est.decision_function(Xs) if kind == "clf" else est.predict(Xs)
    assert np.isfinite(pred).all()
    if kind == "reg":
        assert est.score(Xs, Y[kind]) > 0.5


# --------------------------------------------------------- 4. reproducibility

REPRO_CONFIGS = [
    dict(),
    dict(batch_size=7, average=True, penalty="elasticnet", shuffle=True),
    dict(batch_size=3, learning_rate="adaptive", eta0=0.05, penalty="l1", clip_norm=1.0),
]


def _model_bytes(est):
    return {k: np.asarray(getattr(est, k)).tobytes()
            for k in ("coef_", "intercept_", "t_", "n_iter_", "loss_curve_")}


@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("config", REPRO_CONFIGS, ids=["default", "avg-en", "adaptive-l1"])
def test_same_random_state_gives_bit_identical_models(kind, sparse, config):
    Xs = sp.csr_matrix(X) if sparse else X
    models = []
    for seed in (42, 42, np.random.RandomState):
        rs = (lambda: seed) if isinstance(seed, int) else (lambda: seed(42))
        est = EST[kind](random_state=rs(), max_iter=20, **config).fit(Xs, Y[kind])
        stream = EST[kind](random_state=rs(), **config)
        for rows in np.array_split(np.arange(N), 4):
            _partial_fit(stream, Xs[rows], Y[kind][rows])
        models.append((_model_bytes(est), _model_bytes(stream)))
    assert models[0] == models[1] == models[2]
    other = EST[kind](random_state=7, max_iter=20, **config).fit(Xs, Y[kind])
    assert _model_bytes(other)["coef_"] != models[0][0]["coef_"]  # the seed matters


@pytest.mark.parametrize("n_jobs", [1, 2, -1])
def test_result_does_not_depend_on_n_jobs(n_jobs):
    base = MinibatchSGDClassifier(random_state=0, average=True).fit(X, Y["clf"])
    est = MinibatchSGDClassifier(random_state=0, average=True, n_jobs=n_jobs).fit(X, Y["clf"])
    assert _model_bytes(est) == _model_bytes(base)
    with joblib.parallel_backend("threading", n_jobs=2):
        again = MinibatchSGDClassifier(random_state=0, average=True, n_jobs=n_jobs)
        again.fit(X, Y["clf"])
    assert _model_bytes(again) == _model_bytes(base)


# ------------------------------------------------------------- 5. persistence

UNTRUSTED = {  # documented in docs/reliability.rst
    "clf": {"skgd._classifier.MinibatchSGDClassifier", "skgd._engine.EngineState",
            "skgd._pass_config.Training"},
    "reg": {"skgd._regressor.MinibatchSGDRegressor", "skgd._engine.EngineState",
            "skgd._pass_config.Training"},
}


def _skops():
    return pytest.importorskip("skops.io", reason='skops is in the "test" extra; not installed')


def _pickle_roundtrip(est):
    return pickle.loads(pickle.dumps(est))


def _joblib_roundtrip(est):
    buffer = io.BytesIO()
    joblib.dump(est, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


def _skops_roundtrip(est):
    sio = _skops()
    data = sio.dumps(est)
    return sio.loads(data, trusted=sio.get_untrusted_types(data=data))


ROUNDTRIPS = {"pickle": _pickle_roundtrip, "joblib": _joblib_roundtrip, "skops": _skops_roundtrip}


def _predictions(est, Xp):
    out = {"predict": est.predict(Xp)}
    for method in ("decision_function", "predict_proba"):
        if hasattr(est, method):
            out[method] = getattr(est, method)(Xp)
    return out


@pytest.mark.parametrize("how", sorted(ROUNDTRIPS))
@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_roundtrip_gives_identical_predictions(how, kind, dtype):
    est = _stateful(kind, loss="log_loss") if kind == "clf" else _stateful(kind)
    Xd = X.astype(dtype)
    est.partial_fit(Xd, Y[kind])
    loaded = ROUNDTRIPS[how](est)
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    expected, got = _predictions(est, Xd), _predictions(loaded, Xd)
    for method in expected:
        assert_array_equal(got[method], expected[method])
        assert got[method].dtype == expected[method].dtype
    assert pickle.dumps(loaded) == pickle.dumps(est)  # every attribute, bit for bit
    unfitted = ROUNDTRIPS[how](EST[kind](alpha=0.5, batch_size=8))
    assert unfitted.get_params() == EST[kind](alpha=0.5, batch_size=8).get_params()


@pytest.mark.parametrize("how", sorted(ROUNDTRIPS))
@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_resumed_stream_equals_uninterrupted_stream(how, kind, sparse):
    rng = np.random.RandomState(3)
    Xs = rng.randn(240, 5)
    y = (np.arange(240) % 3) if kind == "clf" else Xs @ rng.randn(5)
    Xs = sp.csr_matrix(Xs) if sparse else Xs
    chunks = np.array_split(np.arange(240), 6)
    params = dict(random_state=0, batch_size=4, average=True, penalty="elasticnet",
                  learning_rate="adaptive", eta0=0.02, **_momentum(kind))

    uninterrupted = EST[kind](**params)
    for rows in chunks:
        _partial_fit(uninterrupted, Xs[rows], y[rows])

    resumed = EST[kind](**params)
    for rows in chunks[:3]:
        _partial_fit(resumed, Xs[rows], y[rows])
    resumed = ROUNDTRIPS[how](resumed)  # saved on Monday, loaded on Tuesday
    for rows in chunks[3:]:
        _partial_fit(resumed, Xs[rows], y[rows])

    assert _model_bytes(resumed) == _model_bytes(uninterrupted)
    _assert_unchanged(resumed, _snapshot(uninterrupted))


@pytest.mark.parametrize("kind", BOTH)
def test_skops_reports_only_skgd_types_as_untrusted(kind, tmp_path):
    sio = _skops()
    est = _stateful(kind, class_weight={0: 2.0}) if kind == "clf" else _stateful(kind)
    path = tmp_path / "model.skops"
    sio.dump(est, path)
    untrusted = set(sio.get_untrusted_types(file=path))
    assert untrusted == UNTRUSTED[kind]
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.load(path)  # nothing loads without the caller's say-so
    loaded = sio.load(path, trusted=sorted(untrusted))
    assert_array_equal(loaded.predict(X), est.predict(X))

    # an unfitted estimator holds no training record; a Loss object adds its class
    assert set(sio.get_untrusted_types(data=sio.dumps(EST[kind]()))) == (
        UNTRUSTED[kind] - {"skgd._engine.EngineState", "skgd._pass_config.Training"})
    with_loss = EST[kind](loss=skgd.losses.Huber(0.5), random_state=0).fit(X, Y[kind])
    untrusted = set(sio.get_untrusted_types(data=sio.dumps(with_loss)))
    assert untrusted == UNTRUSTED[kind] | {"skgd.losses.Huber"}
    assert all(name.startswith("skgd.") for name in untrusted)


# ------------------------------------------------------------- 6. concurrency


@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_concurrent_predictions_equal_serial_ones(kind, sparse):
    rng = np.random.RandomState(5)
    Xp = rng.randn(2000, D)
    est = _stateful(kind, loss="log_loss") if kind == "clf" else _stateful(kind)
    Xp = sp.csr_matrix(Xp) if sparse else Xp
    slices = [slice(i, i + 250) for i in range(0, 2000, 125)]
    methods = [m for m in ("predict", "decision_function", "predict_proba") if hasattr(est, m)]
    jobs = [(m, s) for _ in range(4) for m in methods for s in slices]
    serial = [getattr(est, m)(Xp[s]) for m, s in jobs]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda job: getattr(est, job[0])(Xp[job[1]]), jobs))
    for a, b in zip(parallel, serial, strict=True):
        assert_array_equal(a, b)


@pytest.mark.parametrize("kind", BOTH)
def test_concurrent_training_of_separate_models_equals_serial(kind):
    rng = np.random.RandomState(6)
    Xs = rng.randn(3000, 8)
    y = (np.arange(3000) % 3) if kind == "clf" else Xs @ rng.randn(8)

    def train(seed):
        est = EST[kind](random_state=seed, batch_size=8, average=True)
        for rows in np.array_split(np.arange(3000), 5):
            _partial_fit(est, Xs[rows], y[rows])
        return _model_bytes(est)

    serial = [train(seed) for seed in range(4)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(train, range(4)))
    assert parallel == serial


def test_compiled_pass_releases_the_gil(monkeypatch):
    """The compiled pass is compiled with ``nogil=True`` and really runs
    without the GIL.

    The behavioural half needs no timing: with the interpreter's switch
    interval set to a minute, a thread holding the GIL keeps it until it
    gives it up itself. A worker thread trains; the main thread polls a
    flag that the worker sets just before the engine's pass and clears just
    after. The main thread can only ever see the flag set if the worker
    gave up the GIL inside the pass, which (with ``shuffle=False``, so the
    pass copies no large array) is the compiled kernel releasing it. Each
    attempt is 30 passes, and there are five attempts, in case a loaded
    machine did not schedule the main thread during any of them.
    """
    from skgd import _engine, _kernels, _plain_pass

    assert _kernels.sgd_pass.targetoptions.get("nogil") is True
    assert _plain_pass.plain_pass.targetoptions.get("nogil") is True

    inside = threading.Event()
    real = _engine.Pass.run

    def flagged(*args, **kwargs):
        inside.set()
        try:
            return real(*args, **kwargs)
        finally:
            inside.clear()

    rng = np.random.RandomState(7)
    Xb = rng.randn(20000, 40)
    yb = Xb @ rng.randn(40)
    est = MinibatchSGDRegressor(shuffle=False, max_iter=30, tol=None, random_state=0)
    est.fit(Xb[:50], yb[:50])  # compiled (and loaded) before the measurement
    monkeypatch.setattr(_engine.Pass, "run", flagged)

    seen = False
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(60.0)
    try:
        for _attempt in range(5):
            done = threading.Event()
            worker = threading.Thread(target=lambda: (est.fit(Xb, yb), done.set()))
            worker.start()
            while not done.is_set() and not seen:
                seen = inside.is_set()
                time.sleep(0.0002)  # hands the GIL back, if it was ours
            worker.join()
            if seen:
                break
    finally:
        sys.setswitchinterval(old_interval)
    assert seen, "the main thread never ran while the compiled pass was running"


# ------------------------------------------------------ 7. property-based tests

PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def problems(draw):
    """A random problem and model: shape, dtype, sparsity, batch size, loss,
    penalty, averaging, intercept, clipping (and momentum and multinomial
    training where this version has them). Values come from a seeded
    generator (no exact ties on a hinge), the structure from hypothesis."""
    kind = draw(st.sampled_from(BOTH))
    n = draw(st.integers(2, 40))
    d = draw(st.integers(1, 8))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    density = draw(st.sampled_from([0.0, 0.2, 0.6, 1.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.RandomState(seed)
    Xp = rng.randn(n, d) * (rng.rand(n, d) < density)
    if kind == "clf":
        k = draw(st.integers(2, min(4, n)))
        y = rng.permutation(np.arange(n) % k)
        losses = sorted(skgd.losses.CLASSIFICATION_LOSSES)
    else:
        y = rng.randn(n)
        losses = sorted(skgd.losses.REGRESSION_LOSSES)
    params = dict(
        loss=draw(st.sampled_from(losses)),
        penalty=draw(st.sampled_from([None, "l2", "l1", "elasticnet"])),
        batch_size=draw(st.integers(1, n + 3)),
        average=draw(st.sampled_from([False, True, 3])),
        fit_intercept=draw(st.booleans()),
        clip_norm=draw(st.sampled_from([None, 0.5])),
        random_state=seed,
        max_iter=3,
        tol=None,
    )
    if _has(kind, "momentum"):
        params["momentum"] = draw(st.sampled_from([0.0, 0.5]))
    if _has(kind, "multi_class") and params["loss"] in ("log_loss", "hinge"):
        params["multi_class"] = draw(st.sampled_from(["ovr", "multinomial"]))
    return kind, Xp.astype(dtype), y, params


def _check_outputs(est, kind, Xp, y):
    n, d = Xp.shape
    dtype = Xp.dtype
    assert est.coef_.dtype == dtype and est.intercept_.dtype == dtype
    assert np.isfinite(est.coef_).all() and np.isfinite(est.intercept_).all()
    assert est.n_features_in_ == d
    pred = est.predict(Xp)
    assert pred.shape == (n,)
    if kind == "reg":
        assert est.coef_.shape == (d,) and est.intercept_.shape == (1,)
        assert pred.dtype == dtype
        return
    k = est.classes_.size
    assert_array_equal(est.classes_, np.unique(y))
    n_out = 1 if k == 2 else k
    assert est.coef_.shape == (n_out, d) and est.intercept_.shape == (n_out,)
    assert pred.dtype == est.classes_.dtype and np.isin(pred, est.classes_).all()
    scores = est.decision_function(Xp)
    assert scores.shape == ((n,) if k == 2 else (n, k)) and scores.dtype == dtype
    if hasattr(est, "predict_proba"):
        proba = est.predict_proba(Xp)
        assert proba.shape == (n, k)
        assert np.isfinite(proba).all() and (proba >= 0).all()
        assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


@PROPERTY_SETTINGS
@given(problems())
def test_property_any_valid_problem_trains_and_predicts(problem):
    kind, Xp, y, params = problem
    fitted = EST[kind](**params).fit(Xp, y)  # no exception at all on valid input
    _check_outputs(fitted, kind, Xp, y)
    stream = EST[kind](**params)
    for rows in np.array_split(np.arange(len(y)), 2):
        if rows.size:
            _partial_fit(stream, Xp[rows], y[rows], **(
                {"classes": np.unique(y)} if kind == "clf" else {}))
    _check_outputs(stream, kind, Xp, y)


@PROPERTY_SETTINGS
@given(problems())
def test_property_dense_and_sparse_give_the_same_model(problem):
    kind, Xp, y, params = problem
    dense = EST[kind](**params).fit(Xp, y)
    sparse = EST[kind](**params).fit(sp.csr_matrix(Xp), y)
    rtol, atol = (1e-6, 1e-9) if Xp.dtype == np.float64 else (1e-3, 1e-5)
    assert sparse.coef_.dtype == dense.coef_.dtype
    assert_allclose(sparse.coef_, dense.coef_, rtol=rtol, atol=atol)
    assert_allclose(sparse.intercept_, dense.intercept_, rtol=rtol, atol=atol)
    assert dense.t_ == sparse.t_
    method = "decision_function" if kind == "clf" else "predict"
    assert_allclose(getattr(sparse, method)(sp.csr_matrix(Xp)), getattr(sparse, method)(Xp),
                    rtol=rtol, atol=atol)
