"""Does it pay to split a minibatch's scores over threads? (issue 26, item 2)

Usage::

    python benchmarks/batch_threads.py            # dense 200k x 100, CSR 200k x 2^18
    python benchmarks/batch_threads.py --quick    # n=4000, a smoke run (15-30 s, mostly compiling)
    python benchmarks/batch_threads.py --threads 2 --n 100000

Method. One epoch of minibatch SGD (logistic loss, constant step, rows in a
shuffled order) runs as skgd runs it: for each batch of ``m`` rows, first the
scores ``p_i = x_i . w`` and derivatives ``g_i = -y_i / (1 + exp(y_i p_i))`` of
all its rows (independent: the part we may split), then the sequential update
``w -= eta / m * sum_i g_i x_i`` in row order (never split; it counts in the
time). Three versions of the score step are timed per epoch, best of 3, after
a warm-up that compiles everything:

(a) sequential: one ``@njit(nogil=True, fastmath=True)`` loop;
(b) ``parallel=True`` + ``prange`` over the batch's rows, launched once per
    batch from the compiled epoch loop: what we measure is the launch and
    join of numba's thread pool per batch;
(c) ``--threads - 1`` Python threads, started once per epoch, each in a nogil
    numba loop over its share of every batch, the caller doing the first
    share and the update; hand-offs through two counters read and written with atomic
    acquire / release (LLVM intrinsics) and busy-waited on (``sched_yield``
    after SPINS polls, so that an oversubscribed machine does not stall).

Every row's derivative is computed by the same compiled function and the
update runs in the same order, so the three models must be bit-identical
(asserted). The crossover is the smallest ``m`` where the time ratio to (a)
is below 0.95; ``b-a us/bat`` is the extra time per batch, the hand-off's
cost net of what the split saves. Dense rows are 100 float64; CSR rows have
40 columns of 2^18 drawn with P(rank r) ~ 1/r (Zipf, duplicates summed),
float64 data and int32 indices.
"""

import argparse
import ctypes
import threading
import time

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

JIT = {"nogil": True, "cache": False, "fastmath": True}
SIZES = (8, 32, 128, 512, 2048, 8192)
ETA = 0.01
SPINS = 4000  # busy-wait polls before (c) gives its core away (sched_yield) on a busy machine
_sched_yield = ctypes.CDLL(None).sched_yield
_sched_yield.restype, _sched_yield.argtypes = ctypes.c_int, ()


def _item_ptr(context, builder, sig, args):
    aryty = sig.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])


@intrinsic
def _load_acquire(typingctx, arr, i):
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_item_ptr(context, builder, sig, args), "acquire", 8)
    return types.int64(arr, i), codegen


@intrinsic
def _store_release(typingctx, arr, i, v):
    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _item_ptr(context, builder, sig, args), "release", 8)
        return context.get_dummy_value()
    return types.void(arr, i, v), codegen


@njit(**JIT)
def _wait(flags, i, b):
    """Spin until flags[i] >= b (acquire), yielding the core after SPINS polls."""
    spins = 0
    while _load_acquire(flags, i) < b:
        spins += 1
        if spins > SPINS:
            _sched_yield()


@njit(inline="always", **JIT)
def _dense_dloss(D, y, w, r):
    X = D[0]
    p = 0.0
    for j in range(X.shape[1]):
        p += X[r, j] * w[j]
    return -y[r] / (1.0 + np.exp(y[r] * p))


@njit(inline="always", **JIT)
def _dense_update(D, w, r, c):
    X = D[0]
    for j in range(X.shape[1]):
        w[j] -= c * X[r, j]


@njit(inline="always", **JIT)
def _csr_dloss(D, y, w, r):
    data, indices, indptr = D
    p = 0.0
    for k in range(indptr[r], indptr[r + 1]):
        p += data[k] * w[indices[k]]
    return -y[r] / (1.0 + np.exp(y[r] * p))


@njit(inline="always", **JIT)
def _csr_update(D, w, r, c):
    data, indices, indptr = D
    for k in range(indptr[r], indptr[r + 1]):
        w[indices[k]] -= c * data[k]


def make_kernels(dloss, update):
    """The epoch loops (a), (b), (c) of one data kind, sharing its row functions."""

    @njit(**JIT)
    def scores_seq(D, y, w, order, lo, hi, g):
        for i in range(lo, hi):
            g[i - lo] = dloss(D, y, w, order[i])

    @njit(parallel=True, **JIT)
    def scores_par(D, y, w, order, lo, hi, g):
        for i in prange(hi - lo):
            g[i] = dloss(D, y, w, order[lo + i])

    def make_epoch(scores):
        @njit(**JIT)
        def epoch(D, y, w, order, m):
            g = np.empty(m)
            for lo in range(0, order.size, m):
                hi = min(lo + m, order.size)
                scores(D, y, w, order, lo, hi, g)
                for i in range(hi - lo):  # the sequential update, in row order
                    update(D, w, order[lo + i], ETA / (hi - lo) * g[i])
        return epoch

    @njit(**JIT)
    def share(lo, hi, t, k):
        return lo + (hi - lo) * t // k, lo + (hi - lo) * (t + 1) // k

    @njit(**JIT)
    def worker_c(D, y, w, order, m, g, flags, t, k):
        # flags[0]: batches published by the caller; flags[t]: batches worker t finished
        b = 0
        for lo in range(0, order.size, m):
            b += 1
            _wait(flags, 0, b)
            a, z = share(lo, min(lo + m, order.size), t, k)
            for i in range(a, z):
                g[i - lo] = dloss(D, y, w, order[i])
            _store_release(flags, t, b)

    @njit(**JIT)
    def epoch_c(D, y, w, order, m, g, flags, k):
        b = 0
        for lo in range(0, order.size, m):
            b += 1
            hi = min(lo + m, order.size)
            _store_release(flags, 0, b)  # w is ready for batch b
            a, z = share(lo, hi, 0, k)
            for i in range(a, z):
                g[i - lo] = dloss(D, y, w, order[i])
            for t in range(1, k):
                _wait(flags, t, b)
            for i in range(hi - lo):
                update(D, w, order[lo + i], ETA / (hi - lo) * g[i])

    def run_c(D, y, w, order, m, k):
        g, flags = np.empty(m), np.zeros(k, dtype=np.int64)
        workers = [threading.Thread(target=worker_c, args=(D, y, w, order, m, g, flags, t, k))
                   for t in range(1, k)]
        for th in workers:
            th.start()
        epoch_c(D, y, w, order, m, g, flags, k)
        for th in workers:
            th.join()

    return make_epoch(scores_seq), make_epoch(scores_par), run_c


def make_data(n, rng):
    dense = rng.standard_normal((n, 100))
    ranks = np.arange(1, 2**18 + 1, dtype=np.float64)
    cols = rng.permutation(2**18)[rng.choice(2**18, size=40 * n, p=1 / ranks / (1 / ranks).sum())]
    csr = sp.csr_matrix((rng.random(40 * n), (np.repeat(np.arange(n), 40), cols)),
                        shape=(n, 2**18))  # duplicates summed
    for X, Dt in ((dense, (dense,)), (csr, (csr.data, csr.indices.astype(np.int32),
                                           csr.indptr.astype(np.int32)))):
        w_true = rng.standard_normal(X.shape[1])
        y = np.where(X @ w_true + 0.1 * rng.standard_normal(n) > 0, 1.0, -1.0)
        yield Dt, y, X.shape[1]


def best_of(fn, w0, reps):
    """The best time of reps runs, each from a copy of w0, and the last run's model."""
    best, w = np.inf, None
    for _ in range(reps):
        w = w0.copy()
        t0 = time.perf_counter()
        fn(w)
        best = min(best, time.perf_counter() - t0)
    return best, w


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="n=4000, m <= 512: a smoke run")
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=2, help="<= NUMBA_NUM_THREADS (the cores)")
    ap.add_argument("--reps", type=int, default=3, help="timing is the best of reps epochs")
    args = ap.parse_args()
    n, k = (4000 if args.quick else args.n), args.threads
    sizes = [m for m in SIZES if m <= n // 2]
    numba.set_num_threads(k)
    rng = np.random.default_rng(0)
    order = rng.permutation(n).astype(np.int64)
    kernels = {"dense": make_kernels(_dense_dloss, _dense_update),
               "CSR": make_kernels(_csr_dloss, _csr_update)}
    for kind, (D, y, d) in zip(kernels, make_data(n, rng), strict=True):
        ep_a, ep_b, run_c = kernels[kind]
        w0 = np.zeros(d)
        t0 = time.perf_counter()
        # compile, then one untimed epoch each at m=8: on a busy machine the first epoch of
        # per-batch prange launches was seen ~1000x slower (seconds), the next ones not
        for fn in (ep_a, ep_b):
            fn(D, y, w0.copy(), order, 8)
        run_c(D, y, w0.copy(), order, 8, k)
        if kind == "dense":
            print(f"numba {numba.__version__}: threading layer {numba.threading_layer()}, "
                  f"NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, threads used {k}")
        print(f"\n{kind}: n={n}, d={d}, compiled in {time.perf_counter() - t0:.1f} s")
        print(f"{'m':>6} {'(a) seq ms':>11} {'(b) prange ms':>14} {'(c) spin ms':>12}"
              f" {'b/a':>6} {'c/a':>6} {'b-a us/bat':>10} {'c-a us/bat':>10}")
        cross = {"b": None, "c": None}
        for m in sizes:
            ta, wa = best_of(lambda w: ep_a(D, y, w, order, m), w0, args.reps)
            tb, wb = best_of(lambda w: ep_b(D, y, w, order, m), w0, args.reps)
            tc, wc = best_of(lambda w: run_c(D, y, w, order, m, k), w0, args.reps)
            assert np.array_equal(wa, wb) and np.array_equal(wa, wc), f"models differ at m={m}"
            for key, t in (("b", tb), ("c", tc)):
                if cross[key] is None and t / ta < 0.95:
                    cross[key] = m
            batches = -(-n // m)
            print(f"{m:>6} {ta * 1e3:>11.2f} {tb * 1e3:>14.2f} {tc * 1e3:>12.2f}"
                  f" {tb / ta:>6.2f} {tc / ta:>6.2f} {(tb - ta) / batches * 1e6:>10.1f}"
                  f" {(tc - ta) / batches * 1e6:>10.1f}")
        print(f"crossover ({kind}, ratio < 0.95): (b) m={cross['b'] or 'none'}, "
              f"(c) m={cross['c'] or 'none'}; models bit-identical (a) = (b) = (c)")


if __name__ == "__main__":
    main()
