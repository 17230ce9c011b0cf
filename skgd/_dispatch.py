"""Entering the compiled passes cheaply: one entry point per argument-type
key (numba's dispatcher would type every argument on every call), compiled
or loaded from numba's disk cache on first use, with a notice when that
takes long.
"""

import logging
import threading
import time

import numba
from numba.core import event as numba_events

from ._loss_kernels import BuiltinLoss
from .losses import quiet_experimental

# Compiled entry points of sgd_pass by argument-type key. numba's dispatcher
# types every argument on every call (tens of microseconds here); a streaming
# partial_fit on 100 rows costs not much more than that in total. The state
# arrays are the engine's own (C-ordered, writable, of fixed dtypes and
# dimensions), so only the caller's arrays, the loss and which optional steps
# are on can change the compiled specialization: that is the key.
_ENTRY_POINTS = {}


def _type_key(arrays, coef, loss_spec, loss_params, rule, journal):
    layout = tuple(_layout(a) for a in arrays)
    loss_key = loss_spec.name if isinstance(loss_spec, BuiltinLoss) else id(loss_spec[0])
    if rule is None:  # the plain pass: no compile-time options
        return (layout, coef.dtype.str, loss_key, len(loss_params))
    return (layout, coef.dtype.str, loss_key, len(loss_params),
            tuple(v is None for v in rule), rule.momentum is not None and rule.momentum[1],
            journal is None)


def _layout(a):
    """What numba's type of array ``a`` depends on."""
    flags = a.flags  # (a new object on every access)
    return a.dtype, a.ndim, flags.c_contiguous, flags.writeable, flags.aligned


# A first call of a configuration may compile it (seconds, once per machine:
# numba caches it on disk). A wait longer than this is announced, once per
# configuration, where a user sees it by default: a WARNING on the "skgd"
# logger (which Python prints on stderr when logging is not configured), and
# a line on stdout under ``verbose``. Loading from the cache is quicker and
# says nothing.
_NOTICE_AFTER = 1.0


class _CompileClock(numba_events.Listener):
    """Adds up the time numba spends compiling in this process (its
    "numba:compile" events; loading from the disk cache is not one). A
    compilation compiles its callees inside it: only the outermost counts.
    numba compiles under one global lock, so events never interleave."""

    def __init__(self):
        self.seconds, self._depth, self._start = 0.0, 0, 0.0

    def on_start(self, event):
        if self._depth == 0:
            self._start = time.perf_counter()
        self._depth += 1

    def on_end(self, event):
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._start


_clock = _CompileClock()
numba_events.register("numba:compile", _clock)


def compile_seconds():
    """Seconds this process has spent compiling numba code (skgd's passes,
    their helpers, user losses): ``verbose`` and the demo report training
    time without it."""
    return _clock.seconds


def _compilation_notice(verbose):
    from ._numba_cache import user_cache_dir

    where = numba.config.CACHE_DIR or user_cache_dir()
    message = (
        "skgd: compiling the training pass for a new configuration (a few seconds, once per "
        f"configuration and machine: it is then cached in {where}). "
        "`python -m skgd.compile` compiles the common configurations ahead of time."
    )
    logging.getLogger("skgd").warning(message)
    if verbose:
        print(message, flush=True)


def _call_kernel(kernel, args, key, verbose=False):
    entry = _ENTRY_POINTS.get(key)
    if entry is not None:
        return entry(*args)
    timer = threading.Timer(_NOTICE_AFTER, _compilation_notice, args=(verbose,))
    timer.daemon = True
    before = compile_seconds()
    timer.start()
    try:
        entry = _compile(kernel, args)
    finally:
        timer.cancel()
    spent = compile_seconds() - before
    if verbose and spent > _NOTICE_AFTER:
        print(f"skgd: compiled in {spent:.2f} seconds.", flush=True)
    _ENTRY_POINTS[key] = entry
    return entry(*args)


def _compile(kernel, args):
    """The compiled entry point of ``kernel`` for the types of ``args``,
    compiled (or loaded from numba's disk cache) if needed. Only the
    compilation is quieted (see :func:`~skgd.losses.quiet_experimental`),
    not the pass, which other threads may be running at the same time."""
    with quiet_experimental():  # user losses' C function pointers
        signature = tuple(numba.typeof(a) for a in args)
        kernel.compile(signature)
    return kernel.overloads[signature].entry_point
