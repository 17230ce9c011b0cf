"""Damaged numba cache files of skgd's own functions are recompiled, not fatal.

numba keeps compiled code on disk (``cache=True``). A cache file that was cut
short (an interrupted write, a full disk) or overwritten makes numba raise an
``UnpicklingError`` on every later call, in every process, until someone finds
and deletes the folder. For skgd's functions only, a damaged entry is treated
as a cache miss instead: the function's cache files are removed, a
``RuntimeWarning`` says so once, and numba compiles afresh and writes new
files. Other libraries' numba functions are left to numba's own handling.
"""

import glob
import os
import warnings

from numba.core import caching

_PACKAGE = __name__.rsplit(".", 1)[0] + "."


def _is_ours(cache):
    return getattr(cache._py_func, "__module__", "").startswith(_PACKAGE)


def _remove_files(cache):
    """Delete the function's index and data files; returns how many."""
    files = cache._cache_file
    index = files._index_path
    paths = [index] + glob.glob(index[: -len(".nbi")] + ".*.nbc")
    removed = 0
    for path in paths:
        try:
            os.remove(path)
            removed += 1
        except OSError:
            pass
    return removed


def _guarded(method):
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if not _is_ours(self):
                raise
            removed = _remove_files(self)
            warnings.warn(
                f"skgd: the compiled-code cache of {self._py_func.__qualname__} could not "
                f"be read ({type(exc).__name__}: {exc}); removed its {removed} files "
                f"from {self._cache_path} and compiling it again.",
                RuntimeWarning,
                stacklevel=2,
            )
            return None  # a cache miss: numba compiles, and saves afresh

    guarded.__wrapped__ = method
    return guarded


def install():
    """Guard numba's cache loading and saving (idempotent)."""
    for name in ("load_overload", "save_overload"):
        method = getattr(caching.Cache, name)
        if not hasattr(method, "__wrapped__"):
            setattr(caching.Cache, name, _guarded(method))
