"""The on-disk compile cache of skgd's functions is stale as soon as a
source that compiled code is built from changes, not only the file that
defines the function; and only then (an edit of the estimators, the plots
or a docstring outside the compiled layer keeps the cache).

The training passes (``skgd._plain_pass``, ``skgd._kernels``) inline the built-in losses of ``skgd/losses.py``
(and code of other skgd modules): numba's own stamp, the defining file's
hash, missed an edit there and kept serving the old machine code. Each case
copies the package, fits in a fresh process with an isolated cache (the
per-user cache under ``XDG_CACHE_HOME``, or ``NUMBA_CACHE_DIR``), refits
with the cache unchanged (it must be reused), edits ``_dhinge`` in the
copy's ``losses.py`` and refits (the model must change, and equal a fit
from an emptied cache).

SLOW: three of the five fits compile the pass (10-30 s each; two of four
under ``NUMBA_CACHE_DIR``, where the last check, the same as the per-user
cache's, is not repeated).
"""

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FIT = textwrap.dedent("""
    import json
    import numpy as np
    import skgd
    from skgd import MinibatchSGDClassifier
    from skgd import _kernels, _plain_pass

    rng = np.random.RandomState(0)
    X = rng.randn(40, 3)
    y = (X[:, 0] + 0.3 * rng.randn(40) > 0).astype(int)
    clf = MinibatchSGDClassifier(loss="hinge", random_state=0, max_iter=5, tol=None,
                                 shuffle=False).fit(X, y)
    # the training passes (a binary model runs the plain pass)
    stats = [_kernels.sgd_pass.stats, _plain_pass.plain_pass.stats]
    print(json.dumps({
        "file": skgd.__file__,
        "coef": clf.coef_.ravel().tolist() + clf.intercept_.tolist(),
        "cache_path": stats[1].cache_path,
        "hits": sum(sum(s.cache_hits.values()) for s in stats),
        "misses": sum(sum(s.cache_misses.values()) for s in stats),
    }))
""")

DHINGE = "    return -y if p * y <= threshold else 0.0\n"
DHINGE_TWICE = "    return -2.0 * y if p * y <= threshold else 0.0\n"


def _fit(src, cache, where):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    env["PYTHONPATH"] = str(src)
    env["XDG_CACHE_HOME" if where == "user" else "NUMBA_CACHE_DIR"] = str(cache)
    proc = subprocess.run([sys.executable, "-c", FIT], cwd=src.parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["file"]) == src / "skgd" / "__init__.py", result["file"]
    assert Path(result["cache_path"]).is_relative_to(cache), result["cache_path"]
    return result


def _index_files(cache):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in cache.rglob("*.nbi")}


@pytest.mark.skipif(sys.platform == "win32", reason="the per-user case sets XDG_CACHE_HOME")
@pytest.mark.parametrize("where", ["user", "NUMBA_CACHE_DIR"])
def test_editing_an_inlined_source_file_invalidates_the_cache(where, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "skgd", src / "skgd",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    cache = tmp_path / "cache"
    cache.mkdir()

    first = _fit(src, cache, where)
    assert first["misses"] >= 1 and first["hits"] == 0, first
    indexes = _index_files(cache)
    assert indexes, "nothing was cached"

    # Unchanged sources: the cache is used as it is (not an "always recompile" stamp).
    again = _fit(src, cache, where)
    assert again["hits"] >= 1 and again["misses"] == 0, again
    assert again["coef"] == first["coef"]
    assert _index_files(cache) == indexes, "an unchanged source rewrote the cache index"

    # Edits outside what compiled code is built from: the cache is used as it is.
    for name, edit in (("plotting.py", "\n# a comment\n"),
                       ("_classifier.py", '\n"""A docstring."""\n')):
        (src / "skgd" / name).write_text((src / "skgd" / name).read_text() + edit)
    elsewhere = _fit(src, cache, where)
    assert elsewhere["hits"] >= 1 and elsewhere["misses"] == 0, elsewhere
    assert elsewhere["coef"] == first["coef"]

    losses = src / "skgd" / "losses.py"
    text = losses.read_text()
    assert text.count(DHINGE) == 1, "_dhinge's body moved: update this test"
    losses.write_text(text.replace(DHINGE, DHINGE_TWICE))

    edited = _fit(src, cache, where)
    assert edited["misses"] >= 1 and edited["hits"] == 0, edited
    assert edited["coef"] != first["coef"], "the edit of losses.py was not compiled in"

    if where != "user":
        return  # (the edited code equals a fresh compilation: checked once, below)
    shutil.rmtree(cache)
    cache.mkdir()
    fresh = _fit(src, cache, where)
    assert fresh["misses"] >= 1 and fresh["hits"] == 0, fresh
    assert edited["coef"] == fresh["coef"]


def _skgd_imports(path, package):
    """The skgd modules that the module at ``path`` imports (by name)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative to the module's package
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                if node.module:
                    found.add(f"{base}.{node.module}")
                else:
                    found.update(f"{base}.{a.name}" for a in node.names)
            elif (node.module or "").split(".")[0] == "skgd":
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "skgd")
    return found


def _compiles(path):
    """Whether the module at ``path`` defines a compiled function (a numba
    decorator, or a decorator built from skgd's jit options)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if any(word in ast.unparse(d) for d in node.decorator_list
                   for word in ("jit", "overload", "vectorize", "cfunc")):
                return True
    return False


def test_the_stamp_covers_exactly_what_compiled_code_imports():
    """COMPILED_SOURCES is the import closure of the modules that compile:
    a module compiled code reaches that the stamp missed would serve stale
    machine code after an edit, and a listed module nothing compiled reaches
    would recompile everything for nothing."""
    from skgd._numba_cache import COMPILED_SOURCES

    root = REPO / "skgd"
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        package = ".".join(parts if parts[-1] == "__init__" else parts[:-1])
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path, package
    closure, todo = set(), [m for m, (p, _) in modules.items() if _compiles(p)]
    assert "skgd._kernels" in todo and "skgd.losses" in todo, todo  # the scan sees numba
    while todo:
        name = todo.pop()
        if name in closure or name not in modules:
            continue
        closure.add(name)
        todo.extend(_skgd_imports(*modules[name]))
    covered = {modules[m][0].relative_to(root).as_posix() for m in closure}
    assert covered == set(COMPILED_SOURCES), (
        f"compiled code reaches {sorted(covered - set(COMPILED_SOURCES))} unstamped; "
        f"stamped but unreached: {sorted(set(COMPILED_SOURCES) - covered)}")
