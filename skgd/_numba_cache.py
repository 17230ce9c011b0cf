"""Where numba keeps skgd's compiled code, when it is stale, and what happens
when it is damaged.

**Location.** numba keeps compiled code on disk (``cache=True``), by default
in a ``__pycache__`` folder next to the source. For an installed skgd that
is ``site-packages/skgd/__pycache__``: uninstalling leaves those files, and
the leftover ``site-packages/skgd/`` folder then shadows an editable
install (``import skgd`` finds an empty namespace package). skgd's own
functions are therefore cached in a per-user folder instead,
:func:`user_cache_dir` (``~/.cache/skgd/numba`` on Linux), unless
``NUMBA_CACHE_DIR`` is set: then in the folder of that directory where
numba's own locator (``UserProvidedCacheLocator``) would put them. Other
libraries' numba functions keep numba's own locations. (With
``NUMBA_CACHE_LOCATOR_CLASSES`` set, numba ignores the locator list this
module extends, and all of this is numba's own.)

**Staleness.** numba stamps a function's cache index with the hash of the
one file that defines the function, and discards the index (recompiles)
when that stamp differs. But ``skgd._kernels.sgd_pass`` compiles in code of
other files: the built-in losses of ``skgd/losses.py`` are inlined into the
loop, constants come from ``skgd/schedules.py``, overloads of
``skgd/_kernels.py`` are stamped by that file only, and so on. With numba's
stamp, an edit of ``_dhinge`` in ``losses.py`` (or a new skgd release whose
``_kernels.py`` is unchanged) kept serving the old machine code, in both
cache locations. skgd's functions are therefore stamped with
:func:`source_stamp`: one digest of the sources compiled code is built
from, :data:`COMPILED_SOURCES` (each module that defines a compiled
function, and every skgd module those import: the losses they inline, the
constants and overloads they read). Any change there makes every cached
function of skgd stale, so whatever compiled code reaches is covered
without tracking which function inlines which; an edit elsewhere (the
estimators, the driver, the plots, the docs) keeps the cache.
``tests/test_cache_stamp.py`` checks that the list is that import closure.

The stamp hashes the files' contents, not their ``(mtime, size)``, for
two reasons. An ``(mtime, size)`` stamp can call changed sources fresh: an
edit can keep the size (``1.0`` to ``2.0``), and copies that keep mtimes
(``cp -p``, ``rsync -a``, unpacking a tar archive such as an sdist, which
pip does with the archive's mtimes), coarse file-system clocks (FAT's 2 s)
and builds that pin every mtime to one ``SOURCE_DATE_EPOCH`` can leave the
mtime unchanged too. And it calls unchanged sources stale: pip writes an
installed file's mtime at install time, so every reinstall of the same
release (and a ``git checkout`` back and forth) would recompile every
configuration, where a digest keeps the cache. (numba's own stamp, of the
defining file only, was its ``(mtime, size)`` in older releases and is a
hash of its content in recent ones.) Hashing about 150 kB of source costs
about a millisecond, once per process: the stamp is computed when skgd
first imports this module (:func:`install`), so it describes the sources
as they were imported, which is what the process compiles, even if the
files change while it runs.

**Loading.** Before it loads any cached function, numba refreshes its
compiler's registries (``BaseContext.refresh``): it imports and registers
the typing and lowering of all of Python and NumPy that numba supports,
about 0.2 s, once per process. Loading compiled code needs none of it (the
code is already typed and lowered), only numba's runtime (NRT), which the
refresh would start. So skgd's functions load after starting the runtime
alone (:func:`_without_refresh`); a process that then compiles something
still refreshes, in numba's compiler. Each worker of a parallel grid search
pays this start-up once: the first fit of a new process with a warm cache
falls from about 0.28 s to about 0.1 s (the rest is numba's runtime, its
entry points and unpickling the code). Should loading this way fail, the
function loads numba's way.

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

import functools
import glob
import hashlib
import os
import sys
import warnings

from numba.core import caching, config
from numba.core.runtime import rtsys

_PACKAGE = __name__.rsplit(".", 1)[0] + "."

# What compiled code is built from (see "Staleness" above), relative to the
# package folder. A module that compiles, or that one of these imports, is
# listed here; tests/test_cache_stamp.py fails when one is missing.
COMPILED_SOURCES = (
    "_jit.py", "_kernels.py", "_lazy_weights.py", "_loss_kernels.py", "_numba_cache.py",
    "_plain_pass.py", "_rows.py", "_schedule_kernels.py", "_slots.py", "_smoothness.py",
    "_state.py", "_undo.py", "_update_steps.py", "losses.py", "schedules.py",
)


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


def _without_refresh(method):
    """``Cache.load_overload`` for skgd's functions without numba's registry
    refresh (see the module docstring); numba's ``method`` otherwise, or
    if this way fails."""

    def load_overload(self, sig, target_context):
        if _is_ours(self):
            try:
                rtsys.initialize(target_context)  # what loaded code calls into
                with self._guard_against_spurious_io_errors():
                    return self._load_overload(sig, target_context)
            except Exception:  # noqa: BLE001 - numba's own way decides
                pass
        return method(self, sig, target_context)

    load_overload.__wrapped__ = method
    return load_overload


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


@functools.cache
def source_stamp():
    """The freshness stamp of every cached skgd function: a SHA-256 digest of
    the relative path and content of each of :data:`COMPILED_SOURCES`,
    computed once per process; None if none is on disk (a frozen
    application: numba's own stamp is used then).

    A cache index of an skgd function written under another stamp is
    discarded by numba (``IndexDataCacheFile._load_index``) and the function
    compiled afresh. The digest is a ``str`` tagged ``skgd-sources:``, never
    equal to a stamp numba's own locators write (bytes, or a tuple in older
    numba), so an index that numba wrote in the same ``NUMBA_CACHE_DIR``
    folder, with the same file names, is stale to skgd rather than trusted.
    """
    root = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    hashed = 0
    for relative in COMPILED_SOURCES:
        try:
            with open(os.path.join(root, *relative.split("/")), "rb") as f:
                content = f.read()
            hashed += 1
        except OSError:
            content = b"<unreadable>"
        # the path and the length delimit each file's share of the digest
        digest.update(f"{relative}\0{len(content)}\0".encode())
        digest.update(content)
    return "skgd-sources:" + digest.hexdigest() if hashed else None


def _cache_root():
    """The folder under which skgd's compiled code is cached: ``NUMBA_CACHE_DIR``
    when it is set (read at run time, as numba does), else
    :func:`user_cache_dir`."""
    return config.CACHE_DIR or user_cache_dir()


def _user_cache_locator():
    """A numba cache locator class for skgd's functions (built from numba's
    own locator classes, which are not public: None if they change)."""
    try:
        bases = (caching._SourceFileBackedLocatorMixin, caching._CacheLocator)
    except AttributeError:  # pragma: no cover - a numba without these classes
        return None

    class SkgdUserCacheLocator(*bases):
        """skgd's functions, cached in :func:`user_cache_dir` (or under
        ``NUMBA_CACHE_DIR``) and stamped with :func:`source_stamp`.

        With ``NUMBA_CACHE_DIR`` set, the cache path is the one numba's
        ``UserProvidedCacheLocator`` gives (``NUMBA_CACHE_DIR`` joined with
        ``get_suitable_cache_subpath`` of the defining file): skgd's
        functions stay where users of that variable expect them, but with
        skgd's stamp, which numba's own locator would not use.
        """

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(_cache_root(),
                                            self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        def get_source_stamp(self):
            # numba's stamp covers the defining file only; compiled code of
            # skgd reaches (inlines) other skgd files: stamp them all.
            stamp = source_stamp()
            return stamp if stamp is not None else super().get_source_stamp()

        @classmethod
        def from_function(cls, py_func, py_file):
            if not getattr(py_func, "__module__", "").startswith(_PACKAGE):
                return None  # not skgd's: numba's own locators
            # None when the file is not on disk (a frozen application) or the
            # folder cannot be made or written: numba's defaults
            return super().from_function(py_func, py_file)

    return SkgdUserCacheLocator


def install():
    """Cache skgd's functions per user (or under ``NUMBA_CACHE_DIR``), stamped
    with the digest of the sources they are compiled from, and guard numba's cache loading
    and saving (idempotent)."""
    source_stamp()  # the sources as imported: before any function is compiled
    locators = getattr(caching, "CacheImpl", None)
    locators = getattr(locators, "_locator_classes", None)
    if isinstance(locators, list) and not any(
            c.__name__ == "SkgdUserCacheLocator" for c in locators):
        locator = _user_cache_locator()
        if locator is not None:
            locators.insert(0, locator)
    load = caching.Cache.load_overload
    if not hasattr(load, "__wrapped__"):
        caching.Cache.load_overload = _guarded(_without_refresh(load))
    save = caching.Cache.save_overload
    if not hasattr(save, "__wrapped__"):
        caching.Cache.save_overload = _guarded(save)
