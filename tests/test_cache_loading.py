"""A new process loads skgd's cached compiled code without numba's refresh
of its compiler registries (``skgd._numba_cache._without_refresh``), and
the code it loads trains the same model as the process that compiled it.
The process that compiles says so where a user sees it by default (a
WARNING on the "skgd" logger, printed on stderr when logging is not
configured), once for its one configuration, and ``verbose`` counts the
compile time apart from the training time; the process that loads says
nothing of it.

SLOW: the first fit compiles the pass into an empty cache (10-30 s).
"""

import contextlib
import json
import os
import re
import subprocess
import sys
import textwrap
from types import SimpleNamespace

from skgd import _numba_cache

# a fit in a new process; counts numba's registry refreshes during it
FIT = textwrap.dedent("""
    import json
    import numpy as np
    from numba.core import base
    from skgd import MinibatchSGDClassifier

    refreshes = []
    original = base.BaseContext.refresh

    def counted(self):
        refreshes.append(type(self).__name__)
        return original(self)

    base.BaseContext.refresh = counted
    rng = np.random.RandomState(0)
    X = rng.randn(200, 5)
    y = (X[:, 0] + 0.3 * rng.randn(200) > 0).astype(int)
    clf = MinibatchSGDClassifier(random_state=0, max_iter=5, tol=None, verbose=1).fit(X, y)
    print(json.dumps({"coef": clf.coef_.ravel().tolist() + clf.intercept_.tolist(),
                      "refreshes": len(refreshes)}))
""")


def _fit_in_new_process(cache):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["NUMBA_CACHE_DIR"] = str(cache)
    proc = subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True,
                          text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stop_line"] = [line for line in proc.stdout.splitlines() if line.startswith("Ran")]
    result["notices"] = proc.stderr.count("skgd: compiling the training pass")
    return result


def test_a_warm_cache_loads_without_a_refresh_and_trains_the_same_model(tmp_path):
    compiled = _fit_in_new_process(tmp_path)  # compiles: numba refreshes
    loaded = _fit_in_new_process(tmp_path)
    assert compiled["refreshes"] > 0
    assert loaded["refreshes"] == 0
    assert loaded["coef"] == compiled["coef"]
    # the wait is announced once, and reported apart from the training time
    assert (compiled["notices"], loaded["notices"]) == (1, 0)
    assert re.fullmatch(r"Ran max_iter=5 epochs \(tol=None\) in [\d.]+ seconds "
                        r"\(and [\d.]+ seconds compiling\)\.", compiled["stop_line"][0])
    assert re.fullmatch(r"Ran max_iter=5 epochs \(tol=None\) in [\d.]+ seconds\.",
                        loaded["stop_line"][0]), loaded["stop_line"]


def _cache(module, load):
    return SimpleNamespace(_py_func=SimpleNamespace(__module__=module), _load_overload=load,
                           _guard_against_spurious_io_errors=contextlib.nullcontext)


def _numbas_way(cache, sig, target_context):
    return "numba's way"


def test_skgd_functions_load_directly(monkeypatch):
    monkeypatch.setattr(_numba_cache.rtsys, "initialize", lambda ctx: None)
    load = _numba_cache._without_refresh(_numbas_way)
    cache = _cache("skgd._kernels", lambda sig, ctx: "loaded")
    assert load(cache, "sig", "ctx") == "loaded"


def test_a_failed_direct_load_falls_back_to_numbas_way(monkeypatch):
    monkeypatch.setattr(_numba_cache.rtsys, "initialize", lambda ctx: None)
    load = _numba_cache._without_refresh(_numbas_way)

    def broken(sig, ctx):
        raise KeyError("a registry this way did not load")

    assert load(_cache("skgd._kernels", broken), "sig", "ctx") == "numba's way"


def test_other_libraries_functions_load_numbas_way(monkeypatch):
    monkeypatch.setattr(_numba_cache.rtsys, "initialize", lambda ctx: None)
    load = _numba_cache._without_refresh(_numbas_way)
    cache = _cache("somelib.kernels", lambda sig, ctx: "loaded")
    assert load(cache, "sig", "ctx") == "numba's way"
