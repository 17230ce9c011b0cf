"""skgd.model_selection's searches against scikit-learn's (issue 35).

Usage::

    python benchmarks/search.py              # medians of 3, full data
    python benchmarks/search.py --quick      # 1 repeat, a fraction of the rows

Four searches, each run by scikit-learn's search and by skgd's in the same
process (after a warm-up fit that compiles skgd's code), with the same
candidates and folds; the table gives the median wall time of each and
their ratio, and (for (a), where both search the same estimator) checks
that both found the same best candidate:

(a) adult, MinibatchSGDClassifier(max_iter=10, tol=None, invscaling), grid
    eta0 (5 values) x batch_size {1, 8, 32, 64, 128}, cv=3: scikit-learn's
    GridSearchCV over the same skgd estimator vs skgd's;
(b) SMS TF-IDF features, learning_rate {optimal, invscaling, adaptive} x
    eta0 {0.01, 0.1, 1}, cv=3: GridSearchCV over SGDClassifier vs skgd's
    over MinibatchSGDClassifier;
(c) raw SMS text, Pipeline(TfidfVectorizer(sublinear_tf=True), clf), grid
    clf__alpha x clf__eta0 (invscaling), cv=3: scikit-learn's over
    SGDClassifier vs skgd's over MinibatchSGDClassifier;
(d) digits (3 classes), hinge, elasticnet, RandomizedSearchCV of 15
    candidates over average x l1_ratio x alpha, cv=5: over SGDClassifier vs
    skgd's.

Until ``skgd._fit_many.fit_together`` trains its estimators in one pass,
skgd's search gains mostly where it shares a Pipeline's earlier steps (c);
elsewhere only from splitting the data once per fold rather than once per
candidate. Measured on 2 shared cores (load average about 5), medians of 3:

    search                      sklearn s   skgd s  speed-up  same best
    (a) adult, 25 cands              2.85     1.79     1.59x  True
    (b) SMS TF-IDF, 9 cands          0.26     0.24     1.11x  n/a
    (c) SMS text Pipeline, 9         4.49     0.99     4.55x  n/a
    (d) digits 3-class, 15           1.06     0.64     1.65x  n/a
"""

import argparse
import statistics
import time
import warnings

import numpy as np
from scipy.stats import loguniform
from sklearn import model_selection as sk
from sklearn.datasets import load_digits
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skgd import MinibatchSGDClassifier
from skgd.datasets import load_adult, load_sms_spam
from skgd.model_selection import GridSearchCV, RandomizedSearchCV


def as_int32(X):
    """scikit-learn's SGDClassifier accepts only int32 sparse indices."""
    X = X.copy()
    X.indices, X.indptr = X.indices.astype(np.int32), X.indptr.astype(np.int32)
    return X


def cases(fraction):
    X, y, _, _ = load_adult()
    n = int(X.shape[0] * fraction)
    X, y = X[:n], y[:n]
    adult_grid = {"eta0": [0.001, 0.003, 0.01, 0.03, 0.1], "batch_size": [1, 8, 32, 64, 128]}
    adult = MinibatchSGDClassifier(max_iter=10, tol=None, learning_rate="invscaling",
                                   random_state=0)
    yield ("(a) adult, 25 cands", sk.GridSearchCV(adult, adult_grid, cv=3),
           GridSearchCV(adult, adult_grid, cv=3), X, y)

    texts, labels = load_sms_spam()
    n = int(len(texts) * fraction)
    texts, labels = list(texts[:n]), np.asarray(labels[:n])
    Xt = as_int32(TfidfVectorizer(sublinear_tf=True).fit_transform(texts))
    grid = {"learning_rate": ["optimal", "invscaling", "adaptive"], "eta0": [0.01, 0.1, 1.0]}
    common = dict(alpha=1e-5, max_iter=10, tol=None, random_state=0)
    yield ("(b) SMS TF-IDF, 9 cands", sk.GridSearchCV(SGDClassifier(**common), grid, cv=3),
           GridSearchCV(MinibatchSGDClassifier(**common), grid, cv=3), Xt, labels)

    grid = {"clf__alpha": [1e-6, 1e-5, 1e-4], "clf__eta0": [0.01, 0.1, 1.0]}
    common = dict(max_iter=10, tol=None, learning_rate="invscaling", random_state=0)

    def pipe(clf):
        return Pipeline([("vec", TfidfVectorizer(sublinear_tf=True)), ("clf", clf)])

    yield ("(c) SMS text Pipeline, 9", sk.GridSearchCV(pipe(SGDClassifier(**common)), grid, cv=3),
           GridSearchCV(pipe(MinibatchSGDClassifier(**common)), grid, cv=3), texts, labels)

    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, [0, 1, 2])
    X, y = StandardScaler().fit_transform(X[keep]), y[keep]
    distributions = {"average": [False, True], "l1_ratio": [0.1, 0.5, 0.9],
                     "alpha": loguniform(1e-6, 1e-2)}
    common = dict(loss="hinge", penalty="elasticnet", max_iter=10, tol=None, random_state=0)
    search = dict(n_iter=15, cv=5, random_state=0)
    yield ("(d) digits 3-class, 15", sk.RandomizedSearchCV(SGDClassifier(**common),
                                                           distributions, **search),
           RandomizedSearchCV(MinibatchSGDClassifier(**common), distributions, **search), X, y)


def timed(search, X, y):
    start = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 20%% of the rows")
    args = parser.parse_args()
    repeats, fraction = (1, 0.2) if args.quick else (args.repeats, 1.0)
    warnings.simplefilter("ignore")  # step-cap and convergence notes of some candidates
    print(f"{'search':<26} {'sklearn s':>10} {'skgd s':>8} {'speed-up':>9}  same best")
    for name, theirs, ours, X, y in cases(fraction):
        timed(ours, X, y)  # compiles skgd's configurations
        t_theirs = statistics.median(timed(theirs, X, y) for _ in range(repeats))
        t_ours = statistics.median(timed(ours, X, y) for _ in range(repeats))
        # The best candidates must agree only when both search the same estimator (a).
        same = "n/a"
        if repr(ours.estimator) == repr(theirs.estimator):
            same = ours.best_params_ == theirs.best_params_
        print(f"{name:<26} {t_theirs:>10.2f} {t_ours:>8.2f} {t_theirs / t_ours:>8.2f}x  {same}",
              flush=True)


if __name__ == "__main__":
    main()
