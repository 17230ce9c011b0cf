"""Configurations and data shared by the tests of the data-parallel
wrappers (``skgd.dask.DataParallel``, ``skgd.DataParallel``): every kind of
model, dense and CSR, with and without averaging, L1, momentum, clipping and
class weights."""

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_regression

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor


def classification(n_classes, sparse, n=3000, seed=0):
    X, y = make_classification(n_samples=n, n_features=20, n_informative=8,
                               n_classes=n_classes, random_state=seed, class_sep=1.5)
    if sparse:
        X[np.abs(X) < 0.8] = 0.0  # about half the values
        X = sp.csr_matrix(X)
    return X, y


def regression(sparse, n=3000):
    X, y = make_regression(n_samples=n, n_features=20, n_informative=10, noise=5.0,
                           random_state=0)
    y = y / y.std()
    if sparse:
        X[np.abs(X) < 0.8] = 0.0
        X = sp.csr_matrix(X)
    return X, y


CONFIGS = {
    "binary-hinge": (lambda: MinibatchSGDClassifier(batch_size=16, random_state=0), 2),
    "binary-log-avg-l1-momentum": (lambda: MinibatchSGDClassifier(
        loss="log_loss", penalty="elasticnet", average=True, momentum=0.5, batch_size=8,
        learning_rate="constant", eta0=0.01, random_state=1), 2),
    "ovr-log-avg": (lambda: MinibatchSGDClassifier(
        loss="log_loss", average=True, batch_size=16, random_state=0), 3),
    "ovr-hinge-balanced-clip": (lambda: MinibatchSGDClassifier(
        class_weight="balanced", clip_norm=1.0, batch_size=4, random_state=2), 3),
    "multinomial": (lambda: MinibatchSGDClassifier(
        loss="log_loss", multi_class="multinomial", batch_size=32, random_state=0), 3),
    "regressor": (lambda: MinibatchSGDRegressor(batch_size=16, random_state=0), None),
    "regressor-avg-l1": (lambda: MinibatchSGDRegressor(
        penalty="l1", alpha=1e-3, average=True, batch_size=1, random_state=0), None),
}


def make_data(n_classes, sparse, n=3000):
    return regression(sparse, n) if n_classes is None else classification(
        n_classes, sparse, n)
