"""The floor for training K linear models in one pass over the rows.

A one-pass grid search trains K models on the same rows; this times the lean
numba loop of ``lean_loop.py`` (per-sample SGD, log loss, L2, the weights kept
as ``scale * v`` per model, the intercept step damped by 0.01 on sparse input)
extended to K models, each with its own alpha and rate: ``eta = 1 / (c + d t)``,
'optimal' (``c = alpha (t0 - 1)``, ``d = alpha``, scikit-learn's ``t0``) or
constant (``c = 1 / eta0``, ``d = 0``). Per epoch, on one fixed permutation of
the rows shared by all, medians of 5 epochs after a compiling one, the variants'
epochs taken in turn so that the load of the shared cores falls on all alike:

- separate: K passes of the single-model loop (the model-major loop at K = 1:
  lean_loop's loop without its shuffle);
- feature-major: one pass, weights ``V[n_features, K]``: a non-zero feature
  reads and writes its K weights contiguously (the loop over models vectorises);
- model-major: one pass, weights ``V[K, n_features]``, the models the outer loop
  per row.

The K-model weights equal the separate passes' bit for bit (max |diff| = 0: the
same operations in the same order per model). Measured on 2 shared cores
(float64, CSR with int64 indices; SMS: TfidfVectorizer(sublinear_tf=True)):

    data      K  separate ms  feature-major ms (ratio)  model-major ms (ratio)
    adult     1         3.34           6.17 (1.85)              3.31 (0.99)
    adult     9        29.96          17.99 (0.60)             19.58 (0.65)
    adult    25        84.60          41.72 (0.49)             53.53 (0.63)
    sms       1         0.50           0.82 (1.65)              0.50 (1.00)
    sms       9         4.47           3.06 (0.69)              4.06 (0.91)
    sms      25        12.53           7.67 (0.61)             12.11 (0.97)
    reuters   1         1.42           2.52 (1.78)              1.41 (0.99)
    reuters   9        13.27           6.98 (0.53)             10.48 (0.79)
    reuters  25        39.72          15.83 (0.40)             31.47 (0.79)

Feature-major pays a per-row cost for its K-long loops (1.7-1.9x at K = 1) and
keeps K exp() per row (the log loss derivative), which bounds the gain on adult
(14 non-zeros a row). Minibatch (feature-major; each model steps at its own
batch boundaries with the batch's derivatives at its batch-start weights; batch
sizes 1, 8, 32 cycled over the models, sorted so that the models stepping at a
row, and those a buffered row is in, are a contiguous range), against K passes
of the same loop at K = 1, max |diff| = 0:

    data      K  separate ms  feature-major ms (ratio)
    adult     9        49.27          18.79 (0.38)
    adult    25       139.38          40.11 (0.29)
    sms       9         7.15           3.10 (0.43)
    sms      25        20.47           7.04 (0.34)
    reuters   9        24.34           9.80 (0.40)
    reuters  25        68.12          20.40 (0.30)
"""

import time

import numpy as np
import scipy.sparse as sp
from lean_loop import _epoch as lean_epoch
from lean_loop import _gradient, _seed
from numba import njit
from sklearn.datasets import load_svmlight_file
from sklearn.feature_extraction.text import TfidfVectorizer

from skgd.datasets import load_sms_spam

DATA = "/work/shared/data"


@njit(cache=True)
def _shrink(V, scale, m, eta, alpha):
    """The L2 step of model m on its scale; fold it into V before it underflows."""
    scale[m] *= max(0.0, 1.0 - eta * alpha)
    if scale[m] < 1e-9:
        for j in range(V.shape[0]):
            V[j, m] *= scale[m]
        scale[m] = 1.0


@njit(cache=True)
def epoch_fm(data, indices, indptr, y, V, scale, b, t, c, d, alpha, decay, order):
    """One feature-major pass of the K models of ``V[n_features, K]``; returns t."""
    K = V.shape[1]
    p, u = np.empty(K), np.empty(K)
    for i in order:
        lo, hi = indptr[i], indptr[i + 1]
        p[:] = 0.0
        for k in range(lo, hi):
            x, j = data[k], indices[k]
            for m in range(K):
                p[m] += x * V[j, m]
        for m in range(K):
            eta = 1.0 / (c[m] + d[m] * t)
            step = -eta * _gradient(False, p[m] * scale[m] + b[m], y[i])
            _shrink(V, scale, m, eta, alpha[m])
            u[m] = step / scale[m]
            b[m] += step * decay
        for k in range(lo, hi):
            x, j = data[k], indices[k]
            for m in range(K):
                V[j, m] += x * u[m]
        t += 1.0
    return t


@njit(cache=True)
def epoch_mm(data, indices, indptr, y, W, scale, b, t, c, d, alpha, decay, order):
    """The same pass with model-major weights ``W[K, n_features]``; returns t."""
    for i in order:
        lo, hi = indptr[i], indptr[i + 1]
        for m in range(W.shape[0]):
            w = W[m]
            p = 0.0
            for k in range(lo, hi):
                p += data[k] * w[indices[k]]
            eta = 1.0 / (c[m] + d[m] * t)
            step = -eta * _gradient(False, p * scale[m] + b[m], y[i])
            scale[m] *= max(0.0, 1.0 - eta * alpha[m])
            if scale[m] < 1e-9:
                w *= scale[m]
                scale[m] = 1.0
            u = step / scale[m]
            for k in range(lo, hi):
                w[indices[k]] += data[k] * u
            b[m] += step * decay
        t += 1.0
    return t


@njit(cache=True)
def epoch_mb(data, indices, indptr, y, V, scale, b, t, c, d, alpha, decay, order, bs, G, u):
    """Feature-major minibatch pass; ``bs`` ascending, each dividing the next.
    ``G[Bmax, K]`` holds the buffered rows' derivatives; returns t (rows seen)."""
    K, bmax = V.shape[1], bs[-1]
    p = np.empty(K)
    n = len(order)
    for r in range(n):
        i = order[r]
        lo, hi = indptr[i], indptr[i + 1]
        p[:] = 0.0
        for k in range(lo, hi):
            x, j = data[k], indices[k]
            for m in range(K):
                p[m] += x * V[j, m]
        slot = int(t) % bmax
        for m in range(K):
            G[slot, m] = _gradient(False, p[m] * scale[m] + b[m], y[i])
        t += 1.0
        top = 0  # the models stepping now: those whose batch size divides t
        while top < K and int(t) % bs[top] == 0:
            top += 1
        for m in range(top):
            eta = 1.0 / (c[m] + d[m] * (t / bs[m]))
            g = 0.0
            for a in range(bs[m]):
                g += G[slot - a, m]
            _shrink(V, scale, m, eta, alpha[m])
            u[m] = -eta / bs[m] / scale[m]
            b[m] -= eta * g / bs[m] * decay
        first = 0  # back over the buffered rows: a row of age a is in the batches of bs > a
        for a in range(bs[top - 1] if top else 0):
            while bs[first] <= a:
                first += 1
            ri = order[r - a]  # r - a < 0: the previous epoch's tail (the order is fixed)
            for k in range(indptr[ri], indptr[ri + 1]):
                x, j = data[k], indices[k]
                for m in range(first, top):
                    V[j, m] += x * u[m] * G[slot - a, m]
    return t


def grid(K):
    """K (alpha, rate) pairs: rate 'optimal' or a constant eta0."""
    n = int(round(np.sqrt(K)))
    alphas = np.logspace(-6, -3, n) if n > 1 else np.array([1e-4])
    rates = ["optimal", 0.003, 0.03, 0.3, 1.0][:n]
    return [(a, r) for a in alphas for r in rates]


def rate_params(pairs):
    c, d = [], []
    for alpha, rate in pairs:
        if rate == "optimal":  # lean_loop's t0 for log loss
            typw = np.sqrt(1.0 / np.sqrt(alpha))
            t0 = 1.0 / (typw / max(1.0, _gradient(False, -typw, 1.0)) * alpha)
            c.append(alpha * (t0 - 1.0))
            d.append(alpha)
        else:
            c.append(1.0 / rate)
            d.append(0.0)
    return np.array(c), np.array(d), np.array([a for a, _ in pairs])


def trainer(epoch, X, y, order, pairs, layout="fm", extra=()):
    """The models of ``pairs`` trained together: (one epoch, their coef [K, d])."""
    K, nf = len(pairs), X.shape[1]
    c, d, alpha = rate_params(pairs)
    V = np.zeros((nf, K)) if layout == "fm" else np.zeros((K, nf))
    scale, b, t = np.ones(K), np.zeros(K), [0.0 if extra else 1.0]
    args = (X.data, X.indices, X.indptr, y, V, scale, b)

    def step():
        t[0] = epoch(*args, t[0], c, d, alpha, 0.01, order, *extra)

    def coef():
        return (V * scale).T if layout == "fm" else V * scale[:, None]

    return step, coef


def race(variants, epochs=6):
    """Epochs of each variant (a list of trainers, timed together) taken in turn, so
    that the load of the shared cores falls on all alike; median ms after the first."""
    times = np.zeros((epochs, len(variants)))
    for e in range(epochs):
        for v, trainers in enumerate(variants):
            start = time.perf_counter()
            for step, _ in trainers:
                step()
            times[e, v] = time.perf_counter() - start
    coefs = [np.vstack([coef() for _, coef in trainers]) for trainers in variants]
    return 1e3 * np.median(times[1:], axis=0), coefs


def datasets():
    yield "adult", *load_svmlight_file(f"{DATA}/adult.trn.bz2")
    texts, labels = load_sms_spam()
    yield "sms", TfidfVectorizer(sublinear_tf=True).fit_transform(texts), labels
    yield "reuters", *load_svmlight_file(f"{DATA}/reuters.trn.bz2")


def main():
    rows, mb_rows = [], []
    for name, X, labels in datasets():
        X = sp.csr_matrix(X, dtype=np.float64)
        X.sort_indices()
        y = np.where(labels == np.unique(labels)[1], 1.0, -1.0)
        order = np.random.default_rng(0).permutation(X.shape[0])
        _seed(0)  # the reference loop shuffles its own copy
        v, o = np.zeros(X.shape[1]), np.arange(X.shape[0])
        lean = []
        for _ in range(6):
            start = time.perf_counter()
            lean_epoch(X.data, X.indices, X.indptr, y, v, 1.0, 0.0, 1.0, 1e4, 1e-4, False, 0.01, o)
            lean.append(time.perf_counter() - start)
        print(f"{name}: lean_loop._epoch, one model: {1e3 * np.median(lean[1:]):.2f} ms")
        for K in (1, 9, 25):
            pairs = grid(K)
            (sep_ms, fm_ms, mm_ms), (sep, fm, mm) = race([
                [trainer(epoch_mm, X, y, order, [p], "mm") for p in pairs],
                [trainer(epoch_fm, X, y, order, pairs)],
                [trainer(epoch_mm, X, y, order, pairs, "mm")],
            ])
            diff = max(np.abs(fm - sep).max(), np.abs(mm - sep).max())
            rows.append((name, K, sep_ms, fm_ms, mm_ms, diff))
            # minibatch: batch sizes 1, 8, 32 cycled over the models, sorted ascending
            bs = np.resize(np.array([1, 8, 32]), K)
            pairs = [pairs[m] for m in np.argsort(bs, kind="stable")]
            bs = np.sort(bs)

            def buffers(sizes):
                return (sizes, np.zeros((32, len(sizes))), np.zeros(len(sizes)))

            (sep_ms, mb_ms), (sep, mb) = race([
                [trainer(epoch_mb, X, y, order, [p], "fm", buffers(bs[m:m + 1]))
                 for m, p in enumerate(pairs)],
                [trainer(epoch_mb, X, y, order, pairs, "fm", buffers(bs))],
            ])
            mb_rows.append((name, K, sep_ms, mb_ms, np.abs(mb - sep).max()))
    print(f"\n{'data':8}{'K':>3}  {'separate ms':>11}  {'feature-major ms (ratio)':>24}"
          f"  {'model-major ms (ratio)':>22}  max|diff|")
    for name, K, s, f, m, diff in rows:
        print(f"{name:8}{K:>3}  {s:11.2f}  {f:13.2f} ({f / s:.2f})   {m:15.2f} ({m / s:.2f})"
              f"  {diff:.1e}")
    print(f"\nminibatch, batch sizes 1/8/32\n{'data':8}{'K':>3}  {'separate ms':>11}"
          f"  {'feature-major ms (ratio)':>24}  max|diff|")
    for name, K, s, f, diff in mb_rows:
        print(f"{name:8}{K:>3}  {s:11.2f}  {f:13.2f} ({f / s:.2f})   {diff:.1e}")


if __name__ == "__main__":
    main()
