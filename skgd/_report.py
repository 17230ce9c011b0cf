"""What training tells the user: the lines ``verbose`` prints (one per
epoch, one when training stops) and warnings attributed to the user's line."""

import contextlib
import contextvars
import functools
import os
import sys
import sysconfig
import time
import warnings

import numpy as np

from ._dispatch import compile_seconds


class TrainingClock:
    """The seconds a training call has spent since it started, training and
    compiling apart (a first fit may wait seconds for its pass to compile:
    ``verbose`` does not count that wait as training)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.compiled = compile_seconds()

    def compiling(self):
        """Seconds spent compiling (or loading compiled passes) since the start."""
        return compile_seconds() - self.compiled

    def training(self):
        """Seconds since the start, less :meth:`compiling`."""
        return time.perf_counter() - self.start - self.compiling()


def epoch_line(epoch, objective, state, eta, elapsed, validation_score=None):
    """One epoch: the objective the ``tol`` rule watches, the weights' norm
    and intercept, the step size the last minibatch took, the samples seen,
    the time so far and (with early stopping) the validation score."""
    norm = np.sqrt(max(state.squared_norm(), 0.0))
    nnz = int(np.count_nonzero(state.coef))  # (verbose runs may scan the weights)
    line = (f"Epoch {epoch}: objective {objective:.6g}, norm {norm:.4g}, nnz {nnz}, "
            f"bias {float(np.mean(state.intercept)):.4g}, eta {eta:.3g}, "
            f"t {state.t:.0f}, {elapsed:.3f} s")
    if validation_score is not None:
        line += f", validation score {validation_score:.6g}"
    return line


def stop_line(n_iter, elapsed, *, converged, tol, patience, early_stopping, class_epochs=None,
              best_epoch=None, compiling=0.0):
    """Why training stopped, in scikit-learn's words where it has them
    ("Convergence after N epochs took T seconds", T the training time), the
    time spent compiling apart, and (with early stopping) the epoch whose
    model is kept."""
    if converged:
        watched = "validation score" if early_stopping else "training objective"
        line = (f"Convergence after {n_iter} epochs took {elapsed:.2f} seconds: the "
                f"{watched} did not improve by tol={tol!r} for {patience} epochs")
    elif tol is None:
        line = f"Ran max_iter={n_iter} epochs (tol=None) in {elapsed:.2f} seconds"
    else:
        line = (f"Stopped at max_iter={n_iter} epochs after {elapsed:.2f} seconds, "
                "before converging (see the ConvergenceWarning)")
    if compiling >= 0.01:
        line += f" (and {compiling:.2f} seconds compiling)"
    if class_epochs is not None and len(set(class_epochs)) > 1:
        line += f"; the classes stopped after {list(class_epochs)} epochs"
    if best_epoch is not None:
        line += f"; kept the model of epoch {best_epoch}, the best validation score"
    return line + "."


def _library_prefixes():
    """Folders of the code between a user's line and skgd's warnings: skgd,
    scikit-learn (Pipeline, GridSearchCV), joblib, the standard library."""
    import joblib
    import sklearn

    prefixes = [os.path.dirname(os.path.abspath(m.__file__)) + os.sep
                for m in (sys.modules[__package__], sklearn, joblib)]
    stdlib = sysconfig.get_paths()["stdlib"]
    return tuple(prefixes), os.path.abspath(stdlib) + os.sep


@functools.cache
def _site_prefixes():
    paths = sysconfig.get_paths()
    return tuple({os.path.abspath(paths[k]) + os.sep for k in ("purelib", "platlib")})


def _in_library(filename, prefixes, stdlib):
    if filename.startswith("<frozen"):
        return True
    filename = os.path.abspath(filename)
    if filename.startswith(prefixes):
        return True
    return filename.startswith(stdlib) and not filename.startswith(_site_prefixes())


# A search (skgd.model_selection) trains many candidates and gives one
# warning for all of them: while it trains, what :func:`warn_user` would say
# is collected instead, in the search's own context (contextvars: each
# thread of a parallel search collects its own).
_collector = contextvars.ContextVar("skgd_collected_warnings", default=None)


@contextlib.contextmanager
def collecting_warnings():
    """Within the block, collect what :func:`warn_user` would warn (in this
    thread) instead of warning; yields the list, of ``(source, message,
    category)`` items, ``source`` the estimator the warning is about."""
    found = []
    token = _collector.set(found)
    try:
        yield found
    finally:
        _collector.reset(token)


def warn_user(message, category, source=None):
    """``warnings.warn`` attributed to the user's line (or, inside
    :func:`collecting_warnings`, collected with ``source``): the first frame
    outside skgd, and past scikit-learn's, joblib's and the standard
    library's frames above it when the stack leads out of them (a Pipeline
    or a GridSearchCV called by the user); else (a worker process or
    thread, whose stack ends inside those) the first frame outside skgd."""
    collector = _collector.get()
    if collector is not None:
        collector.append((source, message, category))
        return
    prefixes, stdlib = _library_prefixes()
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            prefixes[0]):
        frame, level = frame.f_back, level + 1
    outside = level
    while frame is not None and _in_library(frame.f_code.co_filename, prefixes, stdlib):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=outside if frame is None else level)
