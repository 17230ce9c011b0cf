"""Recorded-behaviour guard: the models of a fixed set of configurations
must not change.

Every configuration below (each loss, each learning-rate schedule, the
penalties, averaging, momentum, clipping, class and sample weights, dense
and CSR input, float32 and float64, ``fit`` and ``partial_fit`` streams,
binary, one-vs-rest and multinomial classifiers, regressors) is trained on
small fixed data, and its ``coef_``, ``intercept_``, ``n_iter_``, ``t_``
and ``loss_curve_`` (and validation scores under early stopping) are
compared with the values recorded in ``model_fingerprints.json`` next to
this file. A refactoring that is meant to keep behaviour (issue 25) must
leave all of them as they are; a change that is meant to change a model
must regenerate the file, and its commit then shows which models moved::

    PYTHONPATH=. python tests/test_model_fingerprints.py --update

The values are recorded on one machine. numba compiles for the host CPU
with ``fastmath`` reassociation, so a CPU with another vector width may sum
a dot product in another order and differ in the last bits. The comparison
therefore allows a relative difference of 1e-12 for float64 models (1e-5
for float32 ones, whose weights are rounded to 24 bits at every step),
measured against the largest value of each array: far below any change of
the algorithm (a loss derivative off by one part in a million moves these
models by more), far above a reordered sum. Counts (``n_iter_``, ``t_``)
must be equal.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_regression

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor

STORE = Path(__file__).with_name("model_fingerprints.json")

# how far a recorded value may move, relative to its array's largest value
RTOL = {"float64": 1e-12, "float32": 1e-5}


def _sparsish(X, rng):
    X = X.copy()
    X[rng.rand(*X.shape) < 0.4] = 0.0  # real zeros, so CSR differs from dense
    return X


def _data():
    """The small fixed data sets, by name: ``(X, y)``. (The shapes and
    seeds of tests/test_engine.py's fixtures.)"""
    rng = np.random.RandomState(0)
    X, y = make_classification(n_samples=60, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)
    X = _sparsish(X, rng)
    rng = np.random.RandomState(1)
    Xr, yr = make_regression(n_samples=50, n_features=5, noise=1.0, random_state=1)
    Xr = _sparsish(Xr, rng)
    return {
        "multiclass": (X, y),
        "binary": (X, (y == 0).astype(int)),
        "regression": (Xr, yr / yr.std()),
        # unscaled: scikit-learn's per-sample steps diverge, the capped retry trains
        "regression_unscaled": (100.0 * Xr, yr / yr.std()),
    }


def _c(data, layout="dense", dtype="float64", stream=False, sample_weight=False, **params):
    return dict(est="classifier", data=data, layout=layout, dtype=dtype, stream=stream,
                sample_weight=sample_weight, params=params)


def _r(layout="dense", dtype="float64", stream=False, sample_weight=False,
       data="regression", **params):
    return dict(est="regressor", data=data, layout=layout, dtype=dtype, stream=stream,
                sample_weight=sample_weight, params=params)


# name -> configuration. Training runs max_iter epochs at most (the tol rule
# may stop it earlier: n_iter_ records where).
CONFIGS = {
    # classifier losses, one-vs-rest on three classes
    "hinge_optimal_ovr": _c("multiclass"),  # the defaults; each class stops on its own
    "log_constant_l1_csr": _c("multiclass", "csr", loss="log_loss", learning_rate="constant",
                              eta0=0.05, penalty="l1", batch_size=7, max_iter=8),
    "mhuber_invscaling_enet_avg": _c("multiclass", loss="modified_huber",
                                     learning_rate="invscaling", eta0=0.2,
                                     penalty="elasticnet", l1_ratio=0.5, average=True,
                                     batch_size=4, max_iter=8, tol=None),
    "sqhinge_adaptive_tol": _c("multiclass", loss="squared_hinge", learning_rate="adaptive",
                               eta0=0.1, max_iter=40, tol=1e-2, n_iter_no_change=2),
    "perceptron_nopenalty_csr": _c("multiclass", "csr", loss="perceptron",
                                   learning_rate="constant", eta0=1.0, penalty=None,
                                   max_iter=6, tol=None),
    "squared_error_classifier": _c("binary", loss="squared_error", learning_rate="constant",
                                   eta0=0.01, batch_size=5, max_iter=6, tol=None),
    # passive-aggressive
    "pa1_binary": _c("binary", learning_rate="pa1", eta0=0.5, max_iter=6, tol=None),
    "pa2_ovr_csr_batch": _c("multiclass", "csr", learning_rate="pa2", eta0=0.1,
                            batch_size=8, max_iter=6),
    # 'auto' (its own momentum on dense data; none on sparse)
    "auto_log_dense": _c("multiclass", loss="log_loss", learning_rate="auto", batch_size=8,
                         max_iter=10, tol=None),
    "auto_hinge_csr": _c("binary", "csr", learning_rate="auto", batch_size=4, max_iter=10),
    # momentum, clipping
    "momentum_log": _c("multiclass", loss="log_loss", learning_rate="constant", eta0=0.05,
                       momentum=0.9, batch_size=8, max_iter=6, tol=None),
    "nesterov_enet_avg_per_sample": _c("multiclass", learning_rate="constant", eta0=0.05,
                                       momentum=0.5, nesterov=True, penalty="elasticnet",
                                       average=True, max_iter=5, tol=None),
    "clip_norm_log_csr": _c("multiclass", "csr", loss="log_loss", learning_rate="constant",
                            eta0=0.1, clip_norm=0.5, batch_size=8, max_iter=6, tol=None),
    "clip_value_mhuber_l1": _c("multiclass", loss="modified_huber", learning_rate="constant",
                               eta0=0.1, clip_value=0.05, penalty="l1", batch_size=8,
                               max_iter=6, tol=None),
    # class and sample weights
    "class_weight_balanced_binary": _c("binary", class_weight="balanced", batch_size=16,
                                       max_iter=15),
    "class_weight_dict_ovr": _c("multiclass", loss="log_loss",
                                class_weight={0: 3.0, 1: 1.0, 2: 0.5}, max_iter=8, tol=None),
    "sample_weight_hinge_csr": _c("multiclass", "csr", sample_weight=True, batch_size=5,
                                  average=10, max_iter=8, tol=None),
    # float32
    "float32_log_avg": _c("multiclass", dtype="float32", loss="log_loss", average=True,
                          batch_size=4, max_iter=8, tol=None),
    "float32_hinge_csr": _c("binary", "csr", "float32", batch_size=32, max_iter=8, tol=None),
    # multinomial
    "softmax_constant": _c("multiclass", loss="log_loss", multi_class="multinomial",
                           learning_rate="constant", eta0=0.05, batch_size=8, max_iter=8,
                           tol=None),
    "mc_hinge_optimal_per_sample": _c("multiclass", multi_class="multinomial", max_iter=15),
    "softmax_auto": _c("multiclass", loss="log_loss", multi_class="multinomial",
                       learning_rate="auto", batch_size=16, max_iter=8, tol=None),
    "softmax_l1_csr_binary": _c("binary", "csr", loss="log_loss", multi_class="multinomial",
                                penalty="l1", alpha=1e-3, batch_size=6, max_iter=8, tol=None),
    # early stopping on a validation split
    "early_stopping_log": _c("multiclass", loss="log_loss", early_stopping=True,
                             validation_fraction=0.25, n_iter_no_change=3, batch_size=4,
                             max_iter=30),
    # partial_fit streams (three chunks of 20 rows; CSR streams are journaled)
    "stream_hinge": _c("multiclass", stream=True, batch_size=5),
    "stream_csr_l1_avg": _c("multiclass", "csr", stream=True, penalty="l1", average=True,
                            loss="log_loss", batch_size=3),
    "stream_float32_csr": _c("binary", "csr", "float32", stream=True,
                             loss="modified_huber", batch_size=4),
    "stream_auto_csr": _c("multiclass", "csr", stream=True, learning_rate="auto",
                          batch_size=4),
    "stream_softmax": _c("multiclass", stream=True, loss="log_loss",
                         multi_class="multinomial", batch_size=2),
    # regressor losses and schedules
    "reg_squared_invscaling": _r(),  # the defaults, stopped by tol
    "reg_squared_unscaled_capped_retry": _r(data="regression_unscaled",
                                            learning_rate="constant", eta0=0.1, max_iter=5,
                                            tol=None),
    "reg_huber_constant_csr": _r("csr", loss="huber", learning_rate="constant", eta0=0.05,
                                 batch_size=8, max_iter=8, tol=None),
    "reg_epsins_pa1": _r(loss="epsilon_insensitive", learning_rate="pa1", eta0=0.5,
                         max_iter=6, tol=None),
    "reg_epsins_pa2_csr": _r("csr", loss="epsilon_insensitive", learning_rate="pa2",
                             eta0=0.1, batch_size=4, max_iter=6),
    "reg_sqepsins_adaptive": _r(loss="squared_epsilon_insensitive", learning_rate="adaptive",
                                eta0=0.05, batch_size=5, max_iter=40, tol=1e-2,
                                n_iter_no_change=2),
    "reg_auto_dense": _r(learning_rate="auto", batch_size=8, max_iter=10, tol=None),
    "reg_auto_csr_enet": _r("csr", learning_rate="auto", penalty="elasticnet",
                            batch_size=4, max_iter=10, tol=None),
    "reg_optimal_l1": _r(learning_rate="optimal", alpha=0.01, penalty="l1", batch_size=6,
                         max_iter=8, tol=None),
    "reg_momentum_clip": _r(learning_rate="constant", eta0=0.02, momentum=0.8, nesterov=True,
                            clip_norm=0.3, batch_size=8, max_iter=6, tol=None),
    "reg_float32_avg": _r(dtype="float32", average=True, batch_size=4, max_iter=8, tol=None),
    "reg_sample_weight_csr": _r("csr", sample_weight=True, loss="huber", batch_size=5,
                                max_iter=8, tol=None),
    "reg_early_stopping": _r(early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                             batch_size=4, max_iter=30),
    "reg_stream_per_sample": _r(stream=True),
    "reg_stream_auto_csr": _r("csr", stream=True, learning_rate="auto", batch_size=4),
}

CHUNK = 20  # rows per partial_fit call of a stream


def train(config, data):
    """Train one configuration; returns the fitted estimator."""
    X, y = data[config["data"]]
    X = X.astype(config["dtype"])
    if config["layout"] == "csr":
        X = sp.csr_matrix(X)
    sample_weight = None
    if config["sample_weight"]:
        sample_weight = 0.5 + np.arange(X.shape[0]) % 3  # 0.5, 1.5, 2.5, ...
    Est = MinibatchSGDClassifier if config["est"] == "classifier" else MinibatchSGDRegressor
    est = Est(random_state=0, **config["params"])
    with warnings.catch_warnings():
        # convergence and step-cap warnings are part of the behaviour other
        # tests check; here only the models count
        warnings.simplefilter("ignore")
        if not config["stream"]:
            return est.fit(X, y, sample_weight=sample_weight)
        extra = {"classes": np.unique(y)} if config["est"] == "classifier" else {}
        for start in range(0, X.shape[0], CHUNK):
            chunk = slice(start, start + CHUNK)
            est.partial_fit(X[chunk], y[chunk],
                            sample_weight=None if sample_weight is None else sample_weight[chunk],
                            **extra)
    return est


def fingerprint(est):
    """What is recorded of a fitted estimator (plain lists of Python floats,
    whose JSON repr is exact)."""
    coef = est.coef_.toarray() if sp.issparse(est.coef_) else np.asarray(est.coef_)
    out = {
        "dtype": str(coef.dtype),
        "coef": np.asarray(coef, dtype=np.float64).ravel().tolist(),
        "intercept": np.asarray(est.intercept_, dtype=np.float64).ravel().tolist(),
        "n_iter": int(est.n_iter_),
        "t": float(est.t_),
        "loss_curve": [float(v) for v in est.loss_curve_],
    }
    if getattr(est, "validation_scores_", None) is not None:
        out["validation_scores"] = [float(v) for v in est.validation_scores_]
    return out


def _recorded():
    if not STORE.exists():
        pytest.fail(f"{STORE.name} is missing; record it with "
                    f"`python tests/{Path(__file__).name} --update`")
    return json.loads(STORE.read_text())


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_model_is_unchanged(data, name):
    recorded = _recorded()
    assert name in recorded, f"{name!r} has no recorded fingerprint: run --update"
    want, got = recorded[name], fingerprint(train(CONFIGS[name], data))
    assert got["dtype"] == want["dtype"]
    assert (got["n_iter"], got["t"]) == (want["n_iter"], want["t"]), "epochs or samples seen"
    rtol = RTOL[want["dtype"]]
    for key in ("coef", "intercept", "loss_curve", "validation_scores"):
        if key not in want:
            assert key not in got
            continue
        expected, actual = np.array(want[key]), np.array(got[key])
        assert actual.shape == expected.shape, key
        scale = float(np.abs(expected).max(initial=0.0))
        np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * max(scale, 1e-300),
                                   err_msg=f"{name}: {key} changed")


def test_every_recorded_configuration_is_still_trained():
    """A configuration removed from CONFIGS must be removed from the file
    too (by --update), so the file never guards less than it seems to."""
    assert sorted(_recorded()) == sorted(CONFIGS)


def update():
    """Train every configuration and write the recorded values."""
    data = _data()
    record = {name: fingerprint(train(CONFIGS[name], data)) for name in sorted(CONFIGS)}
    # one line per configuration: a diff names the models that moved
    lines = [f"{json.dumps(name)}: {json.dumps(fp, sort_keys=True)}"
             for name, fp in record.items()]
    STORE.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {len(record)} fingerprints to {STORE}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit(f"usage: python {sys.argv[0]} --update  (re-record the models; "
                 "run the checks with pytest)")
    update()
