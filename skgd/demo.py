"""Short demo: skgd against scikit-learn's SGDClassifier on real data.

Run with ``python -m skgd.demo``. Trains both on the bundled UCI Adult data
(32,561 training rows, sparse CSR) with the same loss, alpha and number of
epochs, and prints test accuracy and fit time side by side. The accuracy of
a single run's last iterate moves by several points with the shuffling seed
(for both libraries), so it is the mean over twenty seeds. Compilation happens
once, before the clock starts (it is cached on disk afterwards); the demo
prints its time apart.
"""

import time

import numpy as np
from sklearn.linear_model import SGDClassifier

from skgd import MinibatchSGDClassifier
from skgd._dispatch import compile_seconds
from skgd.datasets import load_adult


def _median_fit_time(est, X, y, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        est.fit(X, y)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


SEEDS = range(20)


def _mean_accuracy(make, X, y, X_test, y_test):
    return float(np.mean([make(seed).fit(X, y).score(X_test, y_test) for seed in SEEDS]))


def main():
    X, y, X_test, y_test = load_adult()
    # SGDClassifier accepts only int32 sparse indices; skgd takes both.
    X32 = X.copy()
    X32.indices = X32.indices.astype(np.int32)
    X32.indptr = X32.indptr.astype(np.int32)

    common = dict(alpha=1e-5, max_iter=10, tol=None)
    print(f"UCI Adult: {X.shape[0]} train / {X_test.shape[0]} test rows, "
          f"{X.shape[1]} features; 10 epochs, alpha=1e-5\n")
    print(f"{'model':<44}{'accuracy':>10}{'fit time':>12}{'ratio':>8}")
    for loss in ("hinge", "log_loss"):
        t_sk = _median_fit_time(SGDClassifier(loss=loss, random_state=0, **common), X32, y)
        acc = _mean_accuracy(lambda s: SGDClassifier(loss=loss, random_state=s, **common),
                             X32, y, X_test, y_test)
        print(f"{f'SGDClassifier(loss={loss!r})':<44}{acc:>10.4f}{t_sk:>11.3f}s{1.0:>8.2f}")
        for batch_size in (1, 32, 256):
            def make(seed):
                return MinibatchSGDClassifier(loss=loss, batch_size=batch_size,
                                              random_state=seed, **common)

            make(0).fit(X[:100], y[:100])  # compile outside the clock
            t = _median_fit_time(make(0), X, y)
            acc = _mean_accuracy(make, X, y, X_test, y_test)
            name = f"MinibatchSGDClassifier(batch_size={batch_size})"
            print(f"{name:<44}{acc:>10.4f}{t:>11.3f}s{t / t_sk:>8.2f}")
        print()
    print("accuracy = mean test accuracy over 20 shuffling seeds; "
          "ratio = skgd fit time / SGDClassifier fit time (lower is faster)")
    print(f"compiling skgd's passes took {compile_seconds():.2f} s, apart from the fit "
          "times above: once per configuration and machine (then cached on disk), "
          "see `python -m skgd.compile`.")


if __name__ == "__main__":
    main()
