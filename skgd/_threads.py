"""How a pass uses the threads ``n_jobs`` allows (issue 26), decided on the
Python side before it runs.

Two ways, each giving the model of one thread bit for bit: a one-vs-rest
pass splits its classes across Python threads (:func:`output_parts`, run by
``skgd._engine.SplitPass``), and a pass of long batches computes each
batch's row scores on numba's threads (:func:`batch_threads`). Each is used
only from the work that pays for a thread, as measured here.
"""

import numba
import scipy.sparse as sp

from . import _kernels as K
from .schedules import get_schedule

# A pass is split across threads only when each thread's part reads at least
# this many values (rows times non-zeros per row times outputs), about a
# millisecond of work: handing the parts to threads and back costs 60-120 us
# a pass (measured on a busy 2-core machine), creating the threads once per
# fit about as much again.
MIN_PART_WORK = 1 << 20


# A batch's row scores are computed on several threads (numba's parallel
# loop, launched once per batch) only from this much work a batch: its rows
# times the values a row reads (its non-zeros, or the columns of dense rows).
# Measured with benchmarks/run.py --only batch_threads (logistic loss, 2
# threads, epoch time of n_jobs=2 / n_jobs=1 with the split forced on, on a
# shared 2-core machine, where single runs swing by +-0.15 and more; the
# same model in every run):
#
# - dense 200k x 100: bs=32 1.37-2.01, 64 1.01-1.53, 128 0.82-1.14, 256
#   0.63-0.99, 512 0.71-1.04, 1024-2048 0.68-0.92. The launch and join cost
#   about 10 us a batch, won back from about 16k values.
# - CSR 200k x 2^18, Zipf columns (run.py's text_like), 23 non-zeros a row
#   (its "40", duplicates summed): one series gave bs=128 0.84-0.87, 256
#   0.82-0.88, 512-2048 0.76-0.82, but three later ones 1.09-1.70 at 128-512
#   and 0.94-1.19 at 2048; 110 non-zeros a row: bs=128 0.81, 512 0.74. A row
#   of hashed text is too little work a thread to pay reliably: sparse
#   batches split only from 64k values (about 2800 rows of 23 non-zeros,
#   600 of 110).
MIN_BATCH_WORK_DENSE = 1 << 14
MIN_BATCH_WORK_SPARSE = 1 << 16


def batch_threads(X, rows, batch_size, n_threads, n_outputs=1):
    """How many threads compute a batch's row scores: ``n_threads`` (at most
    numba's ``NUMBA_NUM_THREADS``) when a batch of ``batch_size`` rows of
    ``X[rows]`` has work enough for ``n_outputs`` scores a row
    (``MIN_BATCH_WORK_*``) and numba's threading layer is safe to enter
    from several Python threads at once; else 1 (the sequential pass,
    compiled and run as without ``n_jobs``)."""
    if n_threads < 2 or batch_size < 2:
        return 1
    if sp.issparse(X):
        per_row, least = X.nnz / max(X.shape[0], 1), MIN_BATCH_WORK_SPARSE
    else:
        per_row, least = X.shape[1], MIN_BATCH_WORK_DENSE
    if min(batch_size, rows.size) * per_row * n_outputs < least or not _thread_safe_layer():
        return 1
    return min(n_threads, numba.config.NUMBA_NUM_THREADS)


_SAFE_LAYERS = ("omp", "tbb")
_layer = []


def _thread_safe_layer():
    """Whether numba's threading layer may run parallel code called from
    several Python threads at once: OpenMP or TBB. Its 'workqueue' layer
    (numba's fallback when neither is installed) aborts the process then
    (a fit per thread, as GridSearchCV's threading backend runs them): with
    it, every pass stays on one thread. Asked once per process, which
    starts numba's threads (only for a fit with ``n_jobs`` and long
    batches)."""
    if not _layer:
        try:
            numba.get_num_threads()  # starts the threading layer numba chooses
            _layer.append(numba.threading_layer() in _SAFE_LAYERS)
        except Exception:  # noqa: BLE001 - no layer at all: stay on one thread
            _layer.append(False)
    return _layer[0]


class numba_threads:
    """Within the block, numba's parallel code called from this thread uses
    ``n`` threads (``numba.set_num_threads`` is per thread); after it, what
    it used before."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.before = numba.get_num_threads()
        numba.set_num_threads(self.n)

    def __exit__(self, *exc_info):
        numba.set_num_threads(self.before)


def most_parts(X, rows, n_outputs):
    """How many threads a pass of ``n_outputs`` outputs over ``X[rows]`` has
    work enough for (see ``MIN_PART_WORK``), each with two outputs at least.

    A part of one output would not run the code the whole pass runs: a
    loop over a batch's derivatives of one output (``derivs[r, k]``, the
    intercept's gradient) reads them with a stride of the number of
    outputs, and for a stride of 1 LLVM compiles a version of its own
    (vectorised, which sums in another order under ``reassoc``): the
    intercepts of a one-output part differ from the whole pass's in the
    last bit.
    """
    per_row = X.nnz / max(X.shape[0], 1) if sp.issparse(X) else X.shape[1]
    work = rows.size * max(per_row, 1.0) * n_outputs
    return min(n_outputs // 2, int(work // MIN_PART_WORK))


def splittable(hyper, rule):
    """Whether each output's steps in a pass are its own: what a pass split
    by outputs across threads needs to give the same model.

    The clock (sample count, lazy L2 scale, cumulative L1 penalty, averaging
    counts) moves alike in every part, and the objective, the class
    weights and the loss failures are per output. Two steps read every
    output at once, and keep a pass whole: 'auto' (its rate comes from
    the gradients and weights of all outputs) and ``clip_norm`` (the norm
    of the whole gradient).
    """
    return get_schedule(hyper[K.H_SCHEDULE]).splittable and rule.clip_norm is None


def output_parts(n_outputs, n_parts):
    """``n_parts`` slices of about equal size that cover ``range(n_outputs)``."""
    bounds = [n_outputs * j // n_parts for j in range(n_parts + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
