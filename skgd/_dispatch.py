"""Entering the compiled passes cheaply: one entry point per argument-type
key (numba's dispatcher would type every argument on every call), compiled
or loaded from numba's disk cache on first use, with a notice when that
takes long.
"""

import logging
import threading

import numba

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


# A first call of a configuration may compile it (1-3 s, once per machine:
# numba caches it on disk). If that takes longer than this, say so, once per
# process: a log message (logger "skgd", level INFO), and a line on stdout
# under ``verbose``.
_NOTICE_AFTER = 1.0
_noticed = []


def _compilation_notice(verbose):
    if _noticed:
        return
    _noticed.append(True)
    from ._numba_cache import user_cache_dir

    where = numba.config.CACHE_DIR or user_cache_dir()
    message = (
        "skgd: compiling the training loop for this configuration (a few seconds, "
        f"once per configuration and machine: it is cached in {where}). "
        "`python -m skgd.compile` compiles the common configurations ahead of time."
    )
    logging.getLogger("skgd").info(message)
    if verbose:
        print(message, flush=True)


def _call_kernel(kernel, args, key, verbose=False):
    entry = _ENTRY_POINTS.get(key)
    if entry is not None:
        return entry(*args)
    timer = None
    if not _noticed:
        timer = threading.Timer(_NOTICE_AFTER, _compilation_notice, args=(verbose,))
        timer.daemon = True
        timer.start()
    try:
        entry = _compile(kernel, args)
    finally:
        if timer is not None:
            timer.cancel()
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
