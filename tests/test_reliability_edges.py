"""Reliability at the edges: changing options mid-stream, streams whose scale
changes, exceptions from a user's compiled loss, malformed CSR matrices,
interrupts while the results are published, errors that name their cause,
and a corrupted numba cache.

The case numbers in the docstrings refer to the specification of this
reliability issue:

1. options changed between ``partial_fit`` calls;
2. streams whose first chunk is all zeros, or whose features grow and
   become correlated later;
3. an exception raised inside a user's compiled loss;
4. malformed CSR input;
5. interrupts inside the method that publishes the fitted attributes;
6. errors that name their cause;
7. a corrupted numba cache.

Anything that can crash the interpreter (memory corruption inside the
compiled kernel, a broken on-disk cache) runs in a Python subprocess, so
that a crash fails the test (through its exit code) instead of killing
pytest. Starting an interpreter (and loading numba) takes seconds, so the
snippets of one kind of check share one subprocess (see ``_run_group``): a
module-scoped fixture starts it once, it imports everything once and runs
each snippet in a process of its own forked from it, and reports each on a
line of its own; each snippet is still its own pytest test, judged exactly
as if it had run alone. Only what needs an interpreter of its own (the
corrupted numba cache: NUMBA_CACHE_DIR must be set before numba is
imported) starts a fresh one per test.
"""

import inspect
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest
from numpy.testing import assert_allclose
from test_reliability import (
    ALL_CALLS,
    BOTH,
    FITS,
    Bad,
    D,
    N,
    X,
    Y,
    _assert_unchanged,
    _call,
    _cases,
    _coef_init,
    _partial_fit,
    _snapshot,
    _stateful,
    _target,
)

import skgd.losses
from skgd import MinibatchSGDRegressor
from skgd._base import BaseMinibatchSGD

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# --------------------------------------------------------- running a snippet

# Run at the top of every snippet: the estimators, the data and helpers of
# test_reliability, and helpers to report back (the last ``RESULT`` line of
# stdout is the snippet's result, as JSON).
_PRELUDE = """
import json, pickle, re, sys, warnings
import numpy as np
import scipy.sparse as sp
warnings.simplefilter("ignore")
from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor
from test_reliability import X, Y, EST, _stateful, _partial_fit, _snapshot, _assert_unchanged

def report(**result):
    print("RESULT " + json.dumps(result), flush=True)

def outcome(fn):
    try:
        fn()
    except Exception as exc:
        chain, e = [], exc
        while e is not None and len(chain) < 5:
            chain.append(f"{type(e).__name__}: {e}")
            e = e.__cause__ or e.__context__
        return {"exc": type(exc).__name__, "msg": str(exc), "chain": chain}
    return {"exc": None, "msg": "", "chain": []}

def unchanged(est, before):
    try:
        _assert_unchanged(est, before)
        return True
    except AssertionError:
        return False
"""


def _env(**extra):
    """The environment of a snippet: this worktree's skgd first, then the
    tests folder (for test_reliability and the losses defined below)."""
    env = dict(os.environ)
    paths = [str(ROOT), str(TESTS)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def _exit_status(returncode):
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name} ({returncode})"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _run(body, *, timeout=300, **env):
    """Run ``body`` (after the prelude) in a fresh interpreter."""
    code = _PRELUDE + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
        env=_env(**env), cwd=str(TESTS),
    )


def _result(proc):
    """The snippet's reported result; fails if the process did not exit cleanly."""
    assert proc.returncode == 0, (
        f"the subprocess ended with {_exit_status(proc.returncode)}; stderr ends with:\n"
        + proc.stderr[-3000:]
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the subprocess reported nothing; stdout:\n{proc.stdout[-2000:]}"
    return json.loads(lines[-1][len("RESULT "):])


# ------------------------------------------- running a group of snippets
#
# Most of the time of a fresh interpreter goes into importing numpy, scipy,
# scikit-learn, numba and skgd. So the snippets of one kind of check share one
# subprocess (``_run_group``, called by a module-scoped fixture), which
# imports all that once (the prelude) and then runs each snippet in a child
# of its own, forked from it: each snippet still has a process of its own
# (a crash or a corrupted heap ends with that snippet, never reaches the
# next one), with its own exit status, stdout and stderr, and its process
# ends the way ``python -c`` ends (uncaught exception: traceback and exit
# code 1; else interpreter shutdown and exit code 0). After each snippet the
# group's process prints one line, ``CASE <json>``, with all of that
# (flushed), and each test judges its snippet's line with ``_result``,
# exactly as if the snippet had run alone.

_GROUP_MAIN = """
import os, signal, tempfile, time
_request = json.load(sys.stdin)
for _name, _body in _request["cases"]:
    _out, _err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    _pid = os.fork()
    if _pid == 0:  # the snippet's process: run it as `python -c` would
        os.dup2(_out.fileno(), 1)
        os.dup2(_err.fileno(), 2)
        exec(compile(_body, "<string>", "exec"))
        sys.exit(0)
    _deadline, _status = time.monotonic() + _request["timeout"], None
    while True:
        _done, _wait = os.waitpid(_pid, os.WNOHANG)
        if _done:
            _status = os.waitstatus_to_exitcode(_wait)
            break
        if time.monotonic() > _deadline:
            os.kill(_pid, signal.SIGKILL)
            os.waitpid(_pid, 0)
            break
        time.sleep(0.005)
    _out.seek(0)
    _err.seek(0)
    print("CASE " + json.dumps({
        "case": _name, "returncode": _status,
        "stdout": _out.read().decode(errors="replace"),
        "stderr": _err.read().decode(errors="replace"),
    }), flush=True)
    _out.close()
    _err.close()
"""


def _run_group(cases, *, timeout=300, **env):
    """Run the snippets ``cases`` ({name: body}), each in a process of its
    own forked from one prepared subprocess; return {name: the snippet's
    ``subprocess.CompletedProcess``, or a message saying why it has none}.

    The stderr of a snippet is its own process's stderr, after the stderr of
    the group's subprocess (whatever the prelude printed while importing, as
    a fresh process would print it too). A snippet that runs longer than
    ``timeout`` seconds is killed and has a message. So has each snippet
    that did not report because the group's subprocess itself died (its
    exit status and the last snippet that reported are named); no snippet
    ever passes without having run. Without ``os.fork`` (Windows), each
    snippet runs in a fresh interpreter, as ``_run`` does."""
    if not hasattr(os, "fork"):
        return {name: _run(body, timeout=timeout, **env) for name, body in cases.items()}
    request = json.dumps({
        "timeout": timeout,
        "cases": [[name, textwrap.dedent(body)] for name, body in cases.items()],
    })
    proc = subprocess.Popen(
        [sys.executable, "-c", _PRELUDE + _GROUP_MAIN], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(**env),
        cwd=str(TESTS), start_new_session=True,
    )
    try:  # each snippet has its own time limit; this one is for the group's process
        stdout, stderr = proc.communicate(request, timeout=timeout * (len(cases) + 1))
        status = _exit_status(proc.returncode)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        status = f"a timeout ({timeout * (len(cases) + 1)} s for the whole group)"
    records, last = {}, None
    for line in stdout.splitlines():
        if line.startswith("CASE "):
            case = json.loads(line[len("CASE "):])
            last = case["case"]
            if case["returncode"] is None:
                records[last] = f"the subprocess timed out after {timeout} s (killed)"
            else:
                records[last] = subprocess.CompletedProcess(
                    [sys.executable, "-c", f"<snippet {last}>"], case["returncode"],
                    case["stdout"], stderr + case["stderr"])
    for name in cases:
        if name not in records:
            records[name] = (
                f"no report: the group's subprocess ended with {status} "
                + (f"after case {last} reported" if last else "before any case reported")
                + "; its stderr ends with:\n" + stderr[-3000:])
    return records


def _snippet(records, name):
    """The finished process of snippet ``name`` of a group (see
    ``_run_group``); a snippet that has none fails its test."""
    record = records[name]
    if isinstance(record, str):
        pytest.fail(f"snippet {name}: {record}")
    return record


# ------------------------------------------ 1. options changed mid-stream

SWITCHES = [  # (id, parameters of the first call, set_params before the next five)
    ("average_on", {}, {"average": True}),
    ("average_off", {"average": True}, {"average": False}),
    ("momentum_on", {}, {"momentum": 0.9}),
    ("momentum_off", {"momentum": 0.9}, {"momentum": 0.0}),
    ("l1_on", {}, {"penalty": "l1"}),
    ("elasticnet_on", {}, {"penalty": "elasticnet"}),
    ("l1_off", {"penalty": "l1"}, {"penalty": "l2"}),
    ("batch_size_1_to_32", {}, {"batch_size": 32}),
    ("batch_size_32_to_1", {"batch_size": 32}, {"batch_size": 1}),
]

_STREAM = """
kind, sparse = {kind!r}, {sparse!r}
X400 = np.random.RandomState(0).randn(400, 20)
y400 = X400.sum(1) if kind == "reg" else X400[:, 0] > 0
Xs = sp.csr_matrix(X400) if sparse else X400
first = {{"classes": [False, True]}} if kind == "clf" else {{}}

def stream(before, after, n_more=5):
    est = EST[kind](random_state=0, **before)
    est.partial_fit(Xs, y400, **first)
    est.set_params(**after)
    for _ in range(n_more):
        est.partial_fit(Xs, y400)
    return est
"""


def _switch_body(before, after, kind, sparse):
    return _STREAM.format(kind=kind, sparse=sparse) + f"""
est = stream({before!r}, {after!r})
report(finite=bool(np.isfinite(est.coef_).all() and np.isfinite(est.intercept_).all()),
       score=float(est.score(Xs, y400)))
"""


@pytest.fixture(scope="module")
def switch_runs():
    """The snippets of the test below, run by one subprocess."""
    return _run_group({
        f"{switch}-{kind}-{sparse}": _switch_body(before, after, kind, sparse)
        for switch, before, after in SWITCHES for kind in BOTH for sparse in (False, True)
    })


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize("switch, before, after", SWITCHES, ids=[s[0] for s in SWITCHES])
def test_option_changed_between_partial_fit_calls_adapts(switch, before, after, kind, sparse,
                                                          switch_runs):
    """Case 1: one partial_fit, set_params(...), five more partial_fit calls,
    in a process of its own: no crash (exit code 0), finite coef_ and intercept_,
    and a sensible model (R^2 > 0.9 / accuracy > 0.9 on the training data)."""
    result = _result(_snippet(switch_runs, f"{switch}-{kind}-{sparse}"))
    assert result["finite"]
    assert result["score"] > 0.9, f"{'R^2' if kind == 'reg' else 'accuracy'} {result['score']}"


@pytest.fixture(scope="module")
def average_runs():
    """The snippets of the test below, run by one subprocess."""
    return _run_group({
        f"{kind}-{sparse}": _STREAM.format(kind=kind, sparse=sparse) + """
switched = stream({}, {"average": True})
plain = stream({}, {})
report(finite=bool(np.isfinite(switched.coef_).all()),
       differs=not np.array_equal(switched.coef_, plain.coef_),
       max_diff=float(np.abs(switched.coef_ - plain.coef_).max()))
"""
        for kind in BOTH for sparse in (False, True)
    })


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("kind", BOTH)
def test_average_switched_on_mid_stream_averages_from_then_on(kind, sparse, average_runs):
    """Case 1: average=True switched on at the second call: the published
    coef_ is finite and is an average, i.e. differs from the coef_ of the
    same stream that never averaged (own process, exit code 0)."""
    result = _result(_snippet(average_runs, f"{kind}-{sparse}"))
    assert result["finite"]
    assert result["differs"], "coef_ is the non-averaged coef_: averaging never started"


MULTI_CLASS_SWITCHES = [("ovr", "multinomial"), ("multinomial", "ovr")]


def _multi_class_body(old, new, n_classes):
    return f"""
X400 = np.random.RandomState(0).randn(400, 20)
y400 = X400[:, 0] > 0 if {n_classes} == 2 else np.digitize(X400[:, 0], [-0.4, 0.4])
est = MinibatchSGDClassifier(random_state=0, multi_class={old!r})
est.partial_fit(X400, y400, classes=np.unique(y400))
before, pred = pickle.dumps(est), est.predict(X400)
est.set_params(multi_class={new!r})
result = outcome(lambda: est.partial_fit(X400, y400))
result["same_predictions"] = bool(np.array_equal(est.predict(X400), pred))
est.set_params(multi_class={old!r})
result["same_pickle"] = pickle.dumps(est) == before
report(**result)
"""


@pytest.fixture(scope="module")
def multi_class_runs():
    """The snippets of the test below, run by one subprocess."""
    return _run_group({
        f"{old}-{new}-{n_classes}": _multi_class_body(old, new, n_classes)
        for old, new in MULTI_CLASS_SWITCHES for n_classes in (2, 3)
    })


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("old, new", MULTI_CLASS_SWITCHES)
def test_multi_class_changed_mid_stream_is_refused(old, new, n_classes, multi_class_runs):
    """Case 1: switching multi_class between partial_fit calls raises a
    ValueError naming multi_class, and the model is left exactly as it was
    (pickle bytes, with the parameter set back) and predicts as before
    (own process, exit code 0)."""
    result = _result(_snippet(multi_class_runs, f"{old}-{new}-{n_classes}"))
    assert result["exc"] == "ValueError", f"no ValueError: {result}"
    assert re.search(r"multi_class", result["msg"]), result["msg"]
    assert result["same_pickle"], "the refused call changed the model"
    assert result["same_predictions"]


LOSS_SWITCHES = [  # (kind, n_classes, multi_class, old loss, new loss)
    ("clf", 2, "ovr", "hinge", "log_loss"),
    ("clf", 3, "ovr", "hinge", "log_loss"),
    ("clf", 3, "multinomial", "hinge", "log_loss"),
    ("reg", 0, None, "squared_error", "huber"),
]


LOSS_SWITCH_IDS = ["binary", "ovr-3", "multinomial-3", "regressor"]


def _loss_switch_body(kind, n_classes, multi_class, old, new):
    return f"""
X400 = np.random.RandomState(0).randn(400, 20)
kind = {kind!r}
if kind == "reg":
    y400, est, first = X400.sum(1), MinibatchSGDRegressor(random_state=0, loss={old!r}), {{}}
else:
    y400 = X400[:, 0] > 0 if {n_classes} == 2 else np.digitize(X400[:, 0], [-0.4, 0.4])
    est = MinibatchSGDClassifier(random_state=0, loss={old!r}, multi_class={multi_class!r})
    first = {{"classes": np.unique(y400)}}
est.partial_fit(X400, y400, **first)
est.set_params(loss={new!r})
result = outcome(lambda: [est.partial_fit(X400, y400) for _ in range(5)])
result["finite"] = bool(np.isfinite(est.coef_).all() and np.isfinite(est.intercept_).all())
result["predicts"] = bool(np.isfinite(est.predict(X400).astype(float)).all())
report(**result)
"""


@pytest.fixture(scope="module")
def loss_switch_runs():
    """The snippets of the test below, run by one subprocess."""
    return _run_group({
        name: _loss_switch_body(*switch) for name, switch in zip(LOSS_SWITCH_IDS, LOSS_SWITCHES, strict=True)
    })


@pytest.mark.parametrize("kind, n_classes, multi_class, old, new", LOSS_SWITCHES,
                         ids=LOSS_SWITCH_IDS)
def test_loss_changed_between_partial_fit_calls_trains(kind, n_classes, multi_class, old, new,
                                                       loss_switch_runs):
    """Case 1: changing the loss between partial_fit calls (hinge -> log_loss,
    squared_error -> huber) is allowed: no crash, a finite model that
    predicts (own process, exit code 0)."""
    name = LOSS_SWITCH_IDS[LOSS_SWITCHES.index((kind, n_classes, multi_class, old, new))]
    result = _result(_snippet(loss_switch_runs, name))
    assert result["exc"] is None, result
    assert result["finite"] and result["predicts"]


# ---------------------------------------- 2. streams that change their scale

N_CHUNKS, CHUNK, WIDTH = 200, 50, 20


def _correlated(rng):
    """Large (scale 10), strongly correlated features: every column a copy
    of one, plus a little noise."""
    return np.repeat(rng.randn(CHUNK, 1) * 10.0, WIDTH, axis=1) + 0.1 * rng.randn(CHUNK, WIDTH)


STREAMS = {  # name -> X of chunk i
    "zeros_then_normal": lambda rng, i: np.zeros((CHUNK, WIDTH)) if i == 0 else rng.randn(CHUNK, WIDTH),
    "zeros_then_correlated": lambda rng, i: np.zeros((CHUNK, WIDTH)) if i == 0 else _correlated(rng),
    "small_then_correlated": lambda rng, i: rng.randn(CHUNK, WIDTH) * 0.01 if i < 20 else _correlated(rng),
}


# (the cap shortening the default's steps is said once; here only whether
# the stream trains counts)
@pytest.mark.filterwarnings("ignore::skgd.exceptions.StepCapWarning")
@pytest.mark.parametrize("batch_size", [1, 32])
@pytest.mark.parametrize("stream", sorted(STREAMS))
def test_stream_that_changes_scale_trains(stream, batch_size):
    """Case 2: 200 chunks of 50 rows whose first chunk is all zeros, or whose
    features become larger and strongly correlated later. Every one of these
    streams must train, per sample and in minibatches: the step caps follow
    the data a stream brings (its first chunk's smoothness is estimated
    again when later chunks are larger), so none may diverge. The targets
    are exactly linear in the features: the regressor must end finite and
    fit the last 10 chunks with R^2 > 0.99."""
    rng = np.random.RandomState(0)
    w = rng.randn(WIDTH)
    chunks = [STREAMS[stream](rng, i) for i in range(N_CHUNKS)]
    est = MinibatchSGDRegressor(random_state=0, batch_size=batch_size)
    for Xc in chunks:
        est.partial_fit(Xc, Xc @ w)
    last = np.vstack(chunks[-10:])
    assert np.isfinite(est.coef_).all() and np.isfinite(est.intercept_).all()
    r2 = est.score(last, last @ w)
    assert r2 > 0.99, f"R^2 on the last chunks = {r2:.3g}, max |coef_| = {np.abs(est.coef_).max():.3g}"


# --------------------------------------------- 3. a user's loss that raises


@numba.njit
def _half_squared(p, y):
    return 0.5 * (p - y) ** 2


@numba.njit
def _d_raises_past_half(p, y):
    if abs(p) > 0.5:
        raise ValueError("bad value")
    return p - y


@numba.njit
def _d_always_raises(p, y):
    raise ValueError("bad value")


class RaisesPastHalf(skgd.losses.Loss):
    """Squared error whose derivative raises ValueError('bad value') for
    |p| > 0.5: fine at the start (p = 0), raised inside the compiled pass
    once training has moved the scores (classifier targets are +-1, so a
    threshold the regressor's scaled targets pass would never be reached)."""

    loss = staticmethod(_half_squared)
    dloss = staticmethod(_d_raises_past_half)
    curvature = 1.0


class AlwaysRaises(skgd.losses.Loss):
    """Squared error whose derivative raises ValueError('bad value') on any call."""

    loss = staticmethod(_half_squared)
    dloss = staticmethod(_d_always_raises)
    curvature = 1.0


def _from_bad_value(exc):
    """The user's exception itself, or a ValueError chained from it."""
    if "bad value" in str(exc):
        return True
    cause = exc.__cause__ or exc.__context__
    return isinstance(exc, ValueError) and cause is not None and "bad value" in str(cause)


@pytest.mark.parametrize("loss", [AlwaysRaises, RaisesPastHalf], ids=["always", "past_half"])
@pytest.mark.parametrize("call", ["fit", "pf", "warm", "pf_fitted"])
@pytest.mark.parametrize("kind", BOTH)
def test_exception_in_user_loss_propagates_and_changes_nothing(kind, call, loss):
    """Case 3: a ValueError('bad value') raised inside a user's compiled dloss
    comes out of fit / partial_fit (not swallowed), and the estimator is left
    as it was (a failed first call leaves it unfitted). A constant rate,
    so that no schedule calls the loss from Python before training."""
    est = _target(kind, call)
    est.set_params(loss=loss(), max_iter=5, tol=None, learning_rate="constant", eta0=0.01)
    before = _snapshot(est)
    with pytest.raises(Exception) as info:
        _call(est, call, X * 1e4, Y[kind] * (1e4 if kind == "reg" else 1), {})
    assert _from_bad_value(info.value), f"{type(info.value).__name__}: {info.value}"
    _assert_unchanged(est, before)


def _user_loss_body(kind):
    return f"""
from test_reliability_edges import AlwaysRaises, RaisesPastHalf
kind = {kind!r}
y = Y[kind] * (1e4 if kind == "reg" else 1)
fit = outcome(lambda: EST[kind](loss=AlwaysRaises(), random_state=0, max_iter=5, tol=None).fit(X * 1e4, y))
est = _stateful(kind)
est.set_params(loss=RaisesPastHalf(), learning_rate="constant", eta0=0.01)
before = _snapshot(est)
pf = outcome(lambda: est.partial_fit(X * 1e4, y))
report(fit=fit, pf=pf, unchanged=unchanged(est, before))
"""


@pytest.fixture(scope="module")
def user_loss_runs():
    """The snippets of the test below, run by one subprocess."""
    return _run_group({kind: _user_loss_body(kind) for kind in BOTH})


@pytest.mark.parametrize("kind", BOTH)
def test_exception_in_user_loss_is_not_printed_and_ignored(kind, user_loss_runs):
    """Case 3, in a process of its own: fit and partial_fit with a user's
    loss that raises report the exception to the caller, the process exits
    cleanly, and nothing is printed as 'Exception ignored' on stderr."""
    proc = _snippet(user_loss_runs, kind)
    result = _result(proc)
    # (a plain bool: pytest's diff of a long stderr against the term takes minutes)
    ignored = "Exception ignored" in proc.stderr
    assert not ignored, proc.stderr[-2000:]
    for call in ("fit", "pf"):
        got = result[call]
        assert got["exc"] is not None, f"{call}: the user's exception was swallowed"
        assert any("bad value" in c for c in got["chain"]), got
    assert result["unchanged"], "the failed partial_fit changed the model"


# ------------------------------------------------------- 4. malformed CSR


MALFORMED = {
    "index_too_large": "A.indices[3] = 10**6",
    "index_negative": "A.indices[3] = -5",
    "indptr_not_monotone": "A.indptr[5] = A.indptr[7] + 3",
    "indptr_past_the_end": "A.indptr[-1] = A.indices.size + 50",
}
CSR_CALLS = [("reg", "fit"), ("reg", "partial_fit"), ("reg", "predict"),
             ("clf", "fit"), ("clf", "partial_fit"), ("clf", "predict"),
             ("clf", "decision_function")]


def _malformed_csr_body(defect, kind, call):
    return f"""
kind, call = {kind!r}, {call!r}
A = sp.csr_matrix(X)
{MALFORMED[defect]}
est = EST[kind](random_state=0) if call == "fit" else _stateful(kind)
before = _snapshot(est)
if call in ("fit", "partial_fit"):
    run = lambda: _partial_fit(est, A, Y[kind]) if call == "partial_fit" else est.fit(A, Y[kind])
else:
    run = lambda: getattr(est, call)(A)
result = outcome(run)
result["unchanged"] = unchanged(est, before)
report(**result)
"""


@pytest.fixture(scope="module")
def malformed_csr_runs():
    """The snippets of the test below, run by one subprocess."""
    return _run_group({
        f"{defect}-{kind}-{call}": _malformed_csr_body(defect, kind, call)
        for defect in sorted(MALFORMED) for kind, call in CSR_CALLS
    })


@pytest.mark.parametrize("kind, call", CSR_CALLS, ids=[f"{k}-{c}" for k, c in CSR_CALLS])
@pytest.mark.parametrize("defect", sorted(MALFORMED))
def test_malformed_csr_is_refused_without_crashing(defect, kind, call, malformed_csr_runs):
    """Case 4: a CSR matrix whose indices are out of range (>= n_features or
    negative), or whose indptr is not monotone or ends past the data, built
    without scipy's full check: fit, partial_fit of a fitted model, predict
    and decision_function raise a ValueError about the indices, in a
    process of its own that exits cleanly; the model is unchanged."""
    result = _result(_snippet(malformed_csr_runs, f"{defect}-{kind}-{call}"))
    assert result["exc"] == "ValueError", f"no ValueError: {result}"
    assert re.search(r"(?i)ind(ex|ices|ptr)", result["msg"]), result["msg"]
    assert result["unchanged"], "the refused call changed the model"


# ------------------------------------------- 5. interrupts while publishing


def _publisher():
    """The method that publishes a finished state as fitted attributes."""
    return dict(inspect.getmembers(BaseMinibatchSGD, inspect.isfunction))["_commit"]


@pytest.mark.parametrize("kind", BOTH)
def test_interrupt_while_publishing_is_all_or_nothing(kind):
    """Case 5: a KeyboardInterrupt raised (through sys.settrace) at line k of
    the method that publishes the fitted attributes, on attempt k, for
    every line of it, and as it returns: an interrupted partial_fit leaves
    loss_curve_ as long as before, and the model is either exactly as before
    or exactly the model of the uninterrupted call (pickle bytes), never in
    between."""
    fn = _publisher()
    code = fn.__code__
    source, first = inspect.getsourcelines(fn)
    targets = [("line", first + k) for k in range(len(source))] + [("return", None)]

    expected = _stateful(kind)
    _partial_fit(expected, X, Y[kind])
    updated = pickle.dumps(expected)

    failures = []
    for event, line in targets:
        est = _stateful(kind)
        before, n_curve = pickle.dumps(est), len(est.loss_curve_)

        def local(frame, ev, arg, event=event, line=line):
            if ev == event and (line is None or frame.f_lineno == line):
                raise KeyboardInterrupt
            return local

        def tracer(frame, ev, arg):
            return local if frame.f_code is code else None

        old = sys.gettrace()
        sys.settrace(tracer)
        interrupted = False
        try:
            _partial_fit(est, X, Y[kind])
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sys.settrace(old)
        after = pickle.dumps(est)
        where = f"{event} {line}" if line else event
        if after not in (before, updated):
            failures.append(f"{where}: the model is neither as before nor fully updated")
        if interrupted and len(est.loss_curve_) != n_curve:
            failures.append(f"{where}: loss_curve_ grew from {n_curve} to {len(est.loss_curve_)}")
    assert not failures, "\n".join(failures)


# ---------------------------------------------- 6. errors that name their cause


def _datetime_X():
    return np.arange(N * D).reshape(N, D).astype("datetime64[D]")


# (The y row: a regex that refuses the divergence message, which blames the
# features, and wants the targets named.)
NAMED_CAUSES = [
    Bad("alpha_1e100_optimal", ("clf",), ALL_CALLS,
        lambda k: dict(params=dict(alpha=1e100)),
        ValueError, r"alpha"),
    Bad("y_times_1e160", ("reg",), ALL_CALLS,
        lambda k: dict(y=Y[k] * 1e160),
        ValueError, r"(?s)^(?!.*Scale the features)(?=.*(\by\b|target))"),
    Bad("sample_weight_1e300", BOTH, ALL_CALLS,
        lambda k: dict(sample_weight=np.full(N, 1e300)),
        ValueError, r"sample_weight"),
    Bad("class_weight_1e300", ("clf",), ALL_CALLS,
        lambda k: dict(params=dict(class_weight={0: 1e300, 1: 1e300})),
        ValueError, r"class_weight"),
    Bad("coef_init_1e155", BOTH, FITS,
        lambda k: dict(coef_init=_coef_init(k, 1e155)),
        ValueError, r"coef_init"),
    Bad("huber_epsilon_nan", ("reg",), ALL_CALLS,
        lambda k: dict(params=dict(loss=skgd.losses.Huber(epsilon=np.nan))),
        ValueError, r"epsilon"),
    Bad("huber_epsilon_negative", ("reg",), ALL_CALLS,
        lambda k: dict(params=dict(loss=skgd.losses.Huber(epsilon=-1.0))),
        ValueError, r"epsilon"),
    Bad("huber_epsilon_none", ("reg",), ALL_CALLS,
        lambda k: dict(params=dict(loss=skgd.losses.Huber(epsilon=None))),
        ValueError, r"epsilon"),
    Bad("hinge_threshold_nan", ("clf",), ALL_CALLS,
        lambda k: dict(params=dict(loss=skgd.losses.Hinge(threshold=np.nan))),
        ValueError, r"threshold"),
    Bad("class_weight_all_zero", ("clf",), ALL_CALLS,
        lambda k: dict(params=dict(class_weight={0: 0, 1: 0, 2: 0})),
        ValueError, r"class_weight"),
    # y holds only labels that are in classes, so the error must be about classes
    Bad("classes_with_none", ("clf",), ("pf",),
        lambda k: dict(classes=[None, 1], y=np.ones(N, dtype=int)),
        (ValueError, TypeError), r"classes"),
    Bad("classes_mixing_str_and_int", ("clf",), ("pf",),
        lambda k: dict(classes=["a", 1], y=np.ones(N, dtype=int)),
        (ValueError, TypeError), r"(?is)classes.*\b(mix\w*|types?)\b|\b(mix\w*|types?)\b.*classes"),
    Bad("object_classes_with_nan", ("clf",), ("pf",),
        lambda k: dict(classes=np.array([1.0, 2.0, np.nan], dtype=object),
                       y=np.where(np.arange(N) % 2, 1.0, 2.0)),
        ValueError, r"classes"),
    Bad("complex_coef_init", BOTH, FITS,
        lambda k: dict(coef_init=_coef_init(k, 1.0) + 1j),
        ValueError, r"(?i)complex"),
    Bad("complex_intercept_init", BOTH, FITS,
        lambda k: dict(intercept_init=np.ones(3 if k == "clf" else 1) + 1j),
        ValueError, r"(?i)complex"),
    Bad("datetime64_X", BOTH, ALL_CALLS,
        lambda k: dict(X=_datetime_X()),
        (TypeError, ValueError), r"(?i)datetime|dtype"),
    Bad("coef_init_3d", BOTH, FITS,
        lambda k: dict(coef_init=np.ones((3 if k == "clf" else 1, D, 1))),
        ValueError, r"coef_init.*\(\d+, 3, 1\)"),
]


@pytest.mark.parametrize("kind, call, case", _cases(NAMED_CAUSES))
def test_error_names_its_cause_and_changes_nothing(kind, call, case):
    """Case 6: values that are valid numbers but impossible to train with
    (alpha=1e100, targets of 1e160, weights of 1e300, coef_init of 1e155),
    invalid loss parameters, nothing to learn from, classes that do not
    compare, complex or 3-d initial values, datetime X: each raises an error
    that names its cause, in fit, a warm-start fit, a first partial_fit and
    a partial_fit of a fitted model, and leaves the estimator as it was."""
    spec = case.make(kind)
    est = _target(kind, call)
    est.set_params(**spec.pop("params", {}))
    bad_X, bad_y = spec.pop("X", X), spec.pop("y", Y[kind])
    before = _snapshot(est)
    with pytest.raises(case.exc, match=case.match):
        _call(est, call, bad_X, bad_y, spec)
    _assert_unchanged(est, before)


HUGE_BATCHES = [2**40, 2**63 - 1]


def _huge_batch_body(kind, batch_size):
    return f"""
kind = {kind!r}
params = dict(shuffle=False, tol=None, max_iter=3, random_state=0)
huge = EST[kind](batch_size={batch_size}, **params)
result = outcome(lambda: huge.fit(X, Y[kind]))
whole = EST[kind](batch_size=40, **params).fit(X, Y[kind])
result["expected"] = whole.coef_.tolist()
result["got"] = huge.coef_.tolist() if hasattr(huge, "coef_") else None
report(**result)
"""


@pytest.fixture(scope="module")
def huge_batch_runs():
    """The snippets of the test below, run by one subprocess."""
    return _run_group({
        f"{kind}-{batch_size}": _huge_batch_body(kind, batch_size)
        for kind in BOTH for batch_size in HUGE_BATCHES
    })


@pytest.mark.parametrize("batch_size", HUGE_BATCHES, ids=["2**40", "2**63-1"])
@pytest.mark.parametrize("kind", BOTH)
def test_batch_larger_than_the_data_is_the_whole_data(kind, batch_size, huge_batch_runs):
    """Case 6: batch_size=2**40 or 2**63-1 on 40 rows trains (no MemoryError,
    no overflow) and gives the model of batch_size=40 (shuffle=False,
    tol=None, max_iter=3). In a process of its own: a huge allocation or an
    overflowed size must not take pytest down."""
    result = _result(_snippet(huge_batch_runs, f"{kind}-{batch_size}"))
    assert result["exc"] is None, f"{result['exc']}: {result['msg']}"
    assert_allclose(np.array(result["got"]), np.array(result["expected"]), rtol=1e-12)


# ------------------------------------------------- 7. corrupted numba cache

_SMALL_FIT = """
rng = np.random.RandomState(0)
Xc = rng.randn(60, 4)
yc = (Xc[:, 0] > 0).astype(int)
clf = MinibatchSGDClassifier(random_state=0, max_iter=5, tol=None).fit(Xc, yc)
report(accuracy=float(clf.score(Xc, yc)))
"""


def _truncate_nbc(cache):
    for path in cache.rglob("*.nbc"):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def _garble_nbi(cache):
    for path in cache.rglob("*.nbi"):
        path.write_bytes(b"\x00not a numba index\xff" * 8)


CORRUPTIONS = {
    "nbc_truncated_nbi_garbage": (_truncate_nbc, _garble_nbi),
    "nbc_truncated": (_truncate_nbc,),
}


# SLOW: each run compiles the engine in a fresh process with an empty cache
# (several seconds to a minute).
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupted_numba_cache_is_recompiled(corruption, tmp_path):
    """Case 7: with NUMBA_CACHE_DIR pointing at a fresh folder, a first
    process fits (and fills the cache); every *.nbc file is then truncated to
    half its size (and every *.nbi overwritten with garbage); a second, new
    process still fits, exits cleanly, and trains a sensible model (at most a
    warning on stderr, no traceback)."""
    cache = tmp_path / "numba_cache"
    cache.mkdir()
    first = _result(_run(_SMALL_FIT, timeout=300, NUMBA_CACHE_DIR=str(cache)))
    assert first["accuracy"] > 0.9
    files = list(cache.rglob("*.nbc")) + list(cache.rglob("*.nbi"))
    assert any(p.suffix == ".nbc" for p in files), "the first process cached nothing"
    for corrupt in CORRUPTIONS[corruption]:
        corrupt(cache)
    proc = _run(_SMALL_FIT, timeout=300, NUMBA_CACHE_DIR=str(cache))
    second = _result(proc)
    assert second["accuracy"] > 0.9
    traceback = "Traceback" in proc.stderr  # a plain bool, as above
    assert not traceback, proc.stderr[-3000:]
