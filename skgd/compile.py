"""Compile skgd's training loops ahead of time: ``python -m skgd.compile``.

numba compiles each configuration of the training loop (loss, input layout
and dtype, batch size 1 or larger, the options that are on) the first time
it runs, in 1-3 s, and caches it on disk (see ``skgd._numba_cache``). Run this
module once after installing, for example in a Docker build step, and the
first ``fit`` of a new process takes a fraction of a second for the common
configurations it covers::

    python -m skgd.compile            # the common configurations
    python -m skgd.compile --list     # what they are

A binary or regression model compiles one pass per loss, layout and batch
kind (one row per step or minibatches): averaging, L1 and elastic net, class
weights and every schedule but 'auto' and passive-aggressive are run-time
choices of that pass, so the configurations here cover them. 'auto' is
covered for binary models too. Still compiled on their first use: clipping,
momentum, passive-aggressive steps, and averaging or L1 with more than two
classes, and user losses.
"""

import argparse
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp

from ._classifier import MinibatchSGDClassifier
from ._regressor import MinibatchSGDRegressor

LAYOUTS = ("dense", "dense float32", "sparse")


def configurations():
    """``(name, estimator, layout, streaming)`` of every configuration
    compiled: the losses users reach for, on each layout, at batch size 1
    and 32, by ``fit``; and streams of sparse chunks by ``partial_fit``."""
    configs = []
    for layout in LAYOUTS:
        for batch_size in (1, 32):
            for loss in ("hinge", "log_loss", "modified_huber"):
                configs.append((f"classifier {loss}", MinibatchSGDClassifier(
                    loss=loss, batch_size=batch_size, max_iter=1, tol=None), layout, False))
            configs.append(("classifier multinomial log_loss", MinibatchSGDClassifier(
                loss="log_loss", multi_class="multinomial", batch_size=batch_size, max_iter=1,
                tol=None), layout, False))
            configs.append(("classifier hinge, 3 classes (one-vs-rest)", MinibatchSGDClassifier(
                batch_size=batch_size, max_iter=1, tol=None), layout, False))
            configs.append(("regressor squared_error", MinibatchSGDRegressor(
                batch_size=batch_size, max_iter=1, tol=None), layout, False))
            configs.append(("classifier hinge, learning_rate='auto'", MinibatchSGDClassifier(
                learning_rate="auto", batch_size=batch_size, max_iter=1, tol=None), layout,
                False))
    for loss in ("hinge", "log_loss"):
        configs.append((f"classifier {loss}", MinibatchSGDClassifier(loss=loss), "sparse", True))
    return configs


def _data(layout, n_classes, rng):
    X = rng.rand(64, 8)
    X[X < 0.5] = 0.0
    y = rng.randint(0, n_classes, size=64)
    if layout == "sparse":
        X = sp.csr_matrix(X)
    elif layout == "dense float32":
        X = X.astype(np.float32)
    return X, y


def compile_all(out=None, configs=None):
    """Run each configuration (default: :func:`configurations`) once on tiny
    data, which compiles and caches it, printing a line each to ``out``
    (default: stdout); returns the total time in seconds."""
    out = sys.stdout if out is None else out
    rng = np.random.RandomState(0)
    start = time.perf_counter()
    configs = configurations() if configs is None else configs
    for k, (name, est, layout, streaming) in enumerate(configs, 1):
        t = time.perf_counter()
        X, y = _data(layout, 3 if "3 classes" in name or "multinomial" in name else 2, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(est, MinibatchSGDRegressor):
                est.fit(X, y.astype(float))
            elif streaming:
                est.partial_fit(X, y, classes=np.unique(y))
                est.partial_fit(X, y)
            else:
                est.fit(X, y)
        how = "partial_fit" if streaming else f"fit, batch_size={est.batch_size}"
        print(f"[{k}/{len(configs)}] {name}, {layout}, {how}: {time.perf_counter() - t:.1f} s",
              file=out, flush=True)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m skgd.compile",
        description="Compile skgd's common training configurations ahead of time.")
    parser.add_argument("--list", action="store_true", help="list them and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, est, layout, streaming in configurations():
            how = "partial_fit" if streaming else f"fit, batch_size={est.batch_size}"
            print(f"{name}, {layout}, {how}")
        return 0
    total = compile_all()
    from numba.core import config

    from ._numba_cache import user_cache_dir

    print(f"compiled in {total:.0f} s; cached in {config.CACHE_DIR or user_cache_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
