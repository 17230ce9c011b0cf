"""skgd against scikit-learn, side by side in one process.

Usage::

    python benchmarks/run.py            # everything (about 5 minutes here)
    python benchmarks/run.py --only dense,predict

Every timing is the median of several runs, with compilation (and the first
call's caching) outside the clock. Each row compares skgd with a peer on the
same data, loss, alpha and number of epochs (``tol=None``), checks that
skgd's accuracy is not more than 0.01 below the peer's, and prints
``ratio = skgd time / peer time`` (lower is better). The table is also
written to ``benchmarks/RESULTS.md``.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.neural_network import MLPClassifier

from skgd import MinibatchSGDClassifier

warnings.filterwarnings("ignore", category=ConvergenceWarning)
HERE = Path(__file__).resolve().parent
ROWS = []


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def record(workload, ours_name, peer_name, t_ours, t_peer, acc_ours=None, acc_peer=None,
           unit="s", target=None):
    ratio = t_ours / t_peer if t_peer else float("nan")
    ok_acc = "" if acc_ours is None else ("ok" if acc_ours >= acc_peer - 0.01 else "LOW")
    row = dict(workload=workload, ours=ours_name, peer=peer_name, t_ours=t_ours,
               t_peer=t_peer, ratio=ratio, acc_ours=acc_ours, acc_peer=acc_peer,
               acc_check=ok_acc, unit=unit, target=target)
    ROWS.append(row)
    acc = "" if acc_ours is None else f"  acc {acc_ours:.4f} vs {acc_peer:.4f} {ok_acc}"
    tgt = "" if target is None else f"  (target <= {target})"
    print(f"{workload:<34} {ours_name:<26} {fmt(t_ours, unit):>10} vs {peer_name:<22} "
          f"{fmt(t_peer, unit):>10}  ratio {ratio:6.3f}{tgt}{acc}", flush=True)


def fmt(t, unit):
    if t is None:
        return "-"
    if unit == "us":
        return f"{t * 1e6:.1f} us"
    if unit == "MB":
        return f"{t:.0f} MB"
    return f"{t:.3f} s"


def fit_timed(est, X, y, repeats, warm=True):
    if warm:  # compile outside the clock
        est.fit(X[:200], y[:200])
    t = median_time(lambda: est.fit(X, y), repeats)
    return t


# ------------------------------------------------------------------ workloads


def dense_binary(repeats):
    rng = np.random.RandomState(0)
    n, d = 200_000, 100
    X = rng.randn(n, d)
    y = (X @ rng.randn(d) + rng.randn(n) > 0).astype(np.int64)
    Xt, yt = X[:20_000], y[:20_000]
    for loss in ("log_loss", "hinge"):
        common = dict(loss=loss, alpha=1e-4, max_iter=5, tol=None, random_state=0)
        sk = SGDClassifier(**common)
        t_sk = fit_timed(sk, X, y, repeats)
        acc_sk = sk.score(Xt, yt)
        for bs in (1, 32, 256):
            ours = MinibatchSGDClassifier(batch_size=bs, **common)
            t = fit_timed(ours, X, y, repeats)
            record(f"dense 200k x 100 {loss}", f"skgd bs={bs}", "SGDClassifier", t, t_sk,
                   ours.score(Xt, yt), acc_sk, target=0.5)
        if loss != "log_loss":
            continue
        # MLPClassifier without hidden layers is logistic regression trained by
        # minibatch SGD: scikit-learn's own minibatch linear model. (Batch 1 is
        # left out: it takes minutes.)
        for bs in (32, 256):
            mlp = MLPClassifier(hidden_layer_sizes=(), solver="sgd", batch_size=bs,
                                max_iter=5, tol=0, n_iter_no_change=10**9,
                                learning_rate_init=0.01, alpha=1e-4, random_state=0)
            t_mlp = median_time(lambda: mlp.fit(X, y), 1)
            ours = MinibatchSGDClassifier(batch_size=bs, **common)
            t = fit_timed(ours, X, y, repeats)
            record(f"dense 200k x 100 {loss}", f"skgd bs={bs}", f"MLPClassifier bs={bs}", t,
                   t_mlp, ours.score(Xt, yt), mlp.score(Xt, yt))
        torch_loop(X, y, Xt, yt, repeats)


def torch_loop(X, y, Xt, yt, repeats):
    try:
        import torch
    except ImportError:
        print("  (PyTorch is not installed: the PyTorch CPU loop is skipped)")
        return
    torch.manual_seed(0)
    Xf = torch.from_numpy(X.astype(np.float32))
    yf = torch.from_numpy(y.astype(np.float32))

    def train(bs):
        model = torch.nn.Linear(X.shape[1], 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-4)
        lossf = torch.nn.BCEWithLogitsLoss()
        for _ in range(5):
            perm = torch.randperm(Xf.shape[0])
            for s in range(0, Xf.shape[0], bs):
                idx = perm[s:s + bs]
                opt.zero_grad()
                loss = lossf(model(Xf[idx]).squeeze(1), yf[idx])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
        return model

    for bs in (32, 256):
        model = None
        t_torch = median_time(lambda: train(bs), 1)
        model = train(bs)
        with torch.no_grad():
            acc_t = float(((model(torch.from_numpy(Xt.astype(np.float32))).squeeze(1) > 0).numpy()
                           == yt).mean())
        ours = MinibatchSGDClassifier(loss="log_loss", batch_size=bs, clip_norm=5.0,
                                      max_iter=5, tol=None, random_state=0)
        t = fit_timed(ours, X, y, repeats)
        record("dense 200k x 100 log_loss", f"skgd bs={bs} clip", f"torch CPU bs={bs}", t,
               t_torch, ours.score(Xt, yt), acc_t)


def dense_multiclass(repeats):
    rng = np.random.RandomState(1)
    n, d, k = 100_000, 100, 10
    centers = 1.5 * rng.randn(k, d)
    y = rng.randint(k, size=n)
    X = centers[y] + 3.0 * rng.randn(n, d)
    common = dict(loss="hinge", alpha=1e-4, max_iter=5, tol=None, random_state=0)
    against_sgdclassifier("dense 10-class 100k x 100", X, y, common, 32, 0.15, repeats)


def against_sgdclassifier(workload, X, y, common, batch_size, target, repeats):
    """One row: skgd at ``batch_size`` against SGDClassifier, same settings."""
    Xt, yt = X[:20_000], y[:20_000]
    sk = SGDClassifier(**common)
    t_sk = fit_timed(sk, X, y, repeats)
    ours = MinibatchSGDClassifier(batch_size=batch_size, **common)
    t = fit_timed(ours, X, y, repeats)
    record(workload, f"skgd bs={batch_size}", "SGDClassifier", t, t_sk,
           ours.score(Xt, yt), sk.score(Xt, yt), target=target)


def text_like(n=200_000, d=2**18, nnz=30, seed=2):
    """Sparse rows with Zipf-distributed columns, L2-normalised, like hashed text."""
    rng = np.random.RandomState(seed)
    cols = (rng.zipf(1.3, size=n * nnz) - 1) % d
    rows = np.repeat(np.arange(n), nnz)
    vals = rng.rand(n * nnz) + 0.5
    X = sp.csr_matrix((vals, (rows, cols)), shape=(n, d))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ X
    w = np.zeros(d)
    w[:5000] = rng.randn(5000)
    y = (X @ w + 0.1 * rng.randn(n) > 0).astype(np.int64)
    return X.tocsr(), y


def sparse_text(repeats):
    X, y = text_like()
    common = dict(loss="hinge", alpha=1e-5, max_iter=5, tol=None, random_state=0)
    against_sgdclassifier("sparse 200k x 2^18, 30 nnz", X, y, common, 32, 0.8, repeats)


def real_data(repeats):
    from skgd.datasets import load_adult, load_reuters

    for name, loader in (("adult", load_adult), ("reuters", load_reuters)):
        X, y, Xt, yt = loader()
        X32 = X.copy()
        X32.indices = X32.indices.astype(np.int32)
        X32.indptr = X32.indptr.astype(np.int32)
        Xt32 = Xt.copy()
        Xt32.indices = Xt32.indices.astype(np.int32)
        Xt32.indptr = Xt32.indptr.astype(np.int32)
        for loss in ("hinge", "log_loss"):
            common = dict(loss=loss, alpha=1e-5, max_iter=10, tol=None, random_state=0)
            sk = SGDClassifier(**common)
            t_sk = fit_timed(sk, X32, y, repeats)
            for bs in (1, 32):
                ours = MinibatchSGDClassifier(batch_size=bs, **common)
                t = fit_timed(ours, X, y, repeats)
                record(f"{name} (real) {loss}", f"skgd bs={bs}", "SGDClassifier", t, t_sk,
                       ours.score(Xt, yt), sk.score(Xt32, yt))


def float32_vs_float64(repeats):
    rng = np.random.RandomState(3)
    X = rng.randn(200_000, 100)
    y = (X @ rng.randn(100) > 0).astype(np.int64)
    common = dict(loss="log_loss", max_iter=5, tol=None, random_state=0, batch_size=32)
    m64 = MinibatchSGDClassifier(**common)
    t64 = fit_timed(m64, X, y, repeats)
    X32 = X.astype(np.float32)
    m32 = MinibatchSGDClassifier(**common)
    t32 = fit_timed(m32, X32, y, repeats)
    record("float32 vs float64 (dense)", "skgd float32", "skgd float64", t32, t64,
           m32.score(X32[:20000], y[:20000]), m64.score(X[:20000], y[:20000]),
           target=round(1 / 1.3, 3))


def streaming(repeats):
    rng = np.random.RandomState(4)
    X = rng.randn(100_000, 100)
    y = (X @ rng.randn(100) > 0).astype(np.int64)
    chunks = [(X[s:s + 100], y[s:s + 100]) for s in range(0, X.shape[0], 100)]
    classes = np.array([0, 1])

    def stream(est):
        for Xc, yc in chunks:
            est.partial_fit(Xc, yc, classes=classes)
        return est

    ours = MinibatchSGDClassifier(loss="log_loss", random_state=0)
    ours.partial_fit(*chunks[0], classes=classes)  # compile
    sk = SGDClassifier(loss="log_loss", random_state=0)
    t_ours = median_time(lambda: stream(MinibatchSGDClassifier(loss="log_loss", random_state=0)),
                         repeats) / len(chunks)
    t_sk = median_time(lambda: stream(SGDClassifier(loss="log_loss", random_state=0)),
                       repeats) / len(chunks)
    a = stream(MinibatchSGDClassifier(loss="log_loss", random_state=0)).score(X[:20000], y[:20000])
    b = stream(sk).score(X[:20000], y[:20000])
    record("partial_fit, 100 rows x 100", "skgd per call", "SGDClassifier", t_ours, t_sk, a, b,
           unit="us", target="100 us")

    Xp = X[:10]
    ours, sk = stream(ours), stream(sk)
    n_calls = 2000

    def many(est):
        for _ in range(n_calls):
            est.predict(Xp)

    t_ours = median_time(lambda: many(ours), repeats) / n_calls
    t_sk = median_time(lambda: many(sk), repeats) / n_calls
    record("predict, 10 rows", "skgd per call", "SGDClassifier", t_ours, t_sk, unit="us",
           target="50 us")


def _python(code, env=None):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, env={**os.environ, **(env or {})}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_start(repeats):
    t_import = np.median([_python("""
        import json, time
        t = time.perf_counter(); import skgd; print(json.dumps(time.perf_counter() - t))
    """) for _ in range(repeats)])
    t_sk_import = np.median([_python("""
        import json, time
        t = time.perf_counter(); import sklearn.linear_model; print(json.dumps(time.perf_counter() - t))
    """) for _ in range(repeats)])
    record("cold start: import", "import skgd", "import sklearn.linear_model", t_import,
           t_sk_import, target="0.5 s")
    first_fit = """
        import json, time
        import numpy as np
        from skgd import MinibatchSGDClassifier
        X = np.random.RandomState(0).randn(1000, 20); y = (X[:, 0] > 0).astype(int)
        t = time.perf_counter(); MinibatchSGDClassifier().fit(X, y)
        print(json.dumps(time.perf_counter() - t))
    """
    with tempfile.TemporaryDirectory() as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        t_empty = _python(first_fit, env)
        t_warm = np.median([_python(first_fit, env) for _ in range(repeats)])
    record("cold start: first fit", "warm compile cache", "empty compile cache", t_warm,
           t_empty, target="1 s (warm)")


def peak_memory(repeats):
    code = """
        import json, resource
        import numpy as np
        from skgd import MinibatchSGDClassifier
        n, d = 1_342_177, 100                     # 1 GiB of float64
        X = np.random.RandomState(0).randn(n, d)
        y = (X[:, 0] > 0).astype(np.int64)
        MinibatchSGDClassifier(max_iter=1, tol=None).fit(X[:1000], y[:1000])  # compile
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        MinibatchSGDClassifier(max_iter=1, tol=None, random_state=0).fit(X, y)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps([before, after, X.nbytes / 2**20]))
    """
    before, after, x_mb = _python(code)
    growth = after - before
    record("fit on 1 GiB float64 X: peak RSS", "growth during fit", "size of X", growth, x_mb,
           unit="MB", target=0.1)


WORKLOADS = {
    "dense": dense_binary,
    "multiclass": dense_multiclass,
    "sparse": sparse_text,
    "real": real_data,
    "float32": float32_vs_float64,
    "streaming": streaming,
    "coldstart": cold_start,
    "memory": peak_memory,
}


def write_table(path):
    lines = [
        "# Benchmark results",
        "",
        f"`python benchmarks/run.py` on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; medians; ratio = skgd / peer (lower is better).",
        "",
        "| workload | skgd | time | peer | time | ratio | target | accuracy skgd / peer |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in ROWS:
        acc = "" if r["acc_ours"] is None else (
            f"{r['acc_ours']:.4f} / {r['acc_peer']:.4f} {r['acc_check']}")
        lines.append(
            f"| {r['workload']} | {r['ours']} | {fmt(r['t_ours'], r['unit'])} | {r['peer']} | "
            f"{fmt(r['t_peer'], r['unit'])} | {r['ratio']:.3f} | "
            f"{'' if r['target'] is None else r['target']} | {acc} |")
    path.write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {', '.join(WORKLOADS)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    for name in args.only.split(","):
        WORKLOADS[name](args.repeats)
    write_table(Path(args.out))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
