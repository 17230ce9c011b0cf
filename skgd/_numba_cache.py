"""Where numba keeps skgd's compiled code, and what happens when it is damaged.

**Location.** numba keeps compiled code on disk (``cache=True``), by default
in a ``__pycache__`` folder next to the source. For an installed skgd that
is ``site-packages/skgd/__pycache__``: uninstalling leaves those files, and
the leftover ``site-packages/skgd/`` folder then shadows an editable
install (``import skgd`` finds an empty namespace package). skgd's own
functions are therefore cached in a per-user folder instead,
:func:`user_cache_dir` (``~/.cache/skgd/numba`` on Linux), unless
``NUMBA_CACHE_DIR`` is set, which numba then uses as usual. Other
libraries' numba functions keep numba's own locations.

**Damage.** Damaged numba cache files of skgd's own functions are recompiled,
not fatal.

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
import sys
import warnings

from numba.core import caching, config

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


def user_cache_dir():
    """The per-user folder of skgd's compiled code: ``$XDG_CACHE_HOME`` (or
    ``~/.cache``) ``/skgd/numba`` on Linux, ``~/Library/Caches/skgd/numba``
    on macOS, ``%LOCALAPPDATA%\\skgd\\numba`` on Windows."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~/AppData/Local")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "skgd", "numba")


def _user_cache_locator():
    """A numba cache locator class for skgd's functions (built from numba's
    own locator classes, which are not public: None if they change)."""
    try:
        bases = (caching._SourceFileBackedLocatorMixin, caching._CacheLocator)
    except AttributeError:  # pragma: no cover - a numba without these classes
        return None

    class SkgdUserCacheLocator(*bases):
        """skgd's functions, cached in :func:`user_cache_dir`."""

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(user_cache_dir(),
                                            self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        @classmethod
        def from_function(cls, py_func, py_file):
            if config.CACHE_DIR or not getattr(py_func, "__module__", "").startswith(_PACKAGE):
                return None  # NUMBA_CACHE_DIR, or not skgd's: numba's own locators
            # None when the folder cannot be made or written: numba's defaults
            return super().from_function(py_func, py_file)

    return SkgdUserCacheLocator


def install():
    """Cache skgd's functions per user, and guard numba's cache loading and
    saving (idempotent)."""
    locators = getattr(caching, "CacheImpl", None)
    locators = getattr(locators, "_locator_classes", None)
    if isinstance(locators, list) and not any(
            c.__name__ == "SkgdUserCacheLocator" for c in locators):
        locator = _user_cache_locator()
        if locator is not None:
            locators.insert(0, locator)
    for name in ("load_overload", "save_overload"):
        method = getattr(caching.Cache, name)
        if not hasattr(method, "__wrapped__"):
            setattr(caching.Cache, name, _guarded(method))
