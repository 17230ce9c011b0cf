"""The bundled loaders return what their docstrings promise."""

import numpy as np
import pytest
import scipy.sparse as sp

from skgd import datasets


@pytest.mark.parametrize(
    "loader, n_train, n_test, n_features",
    [
        (datasets.load_adult, 32561, 16281, 123),
        (datasets.load_reuters, 7770, 3299, 8315),
    ],
)
def test_svmlight_loaders_shapes_and_labels(loader, n_train, n_test, n_features):
    X_train, y_train, X_test, y_test = loader()
    for X, n in ((X_train, n_train), (X_test, n_test)):
        assert sp.issparse(X) and X.format == "csr"
        assert X.shape == (n, n_features)
        assert X.indices.dtype == np.int64
        assert X.nnz > 0
    assert y_train.shape == (n_train,)
    assert y_test.shape == (n_test,)
    for y in (y_train, y_test):
        assert set(np.unique(y).tolist()) == {-1, 1}


def test_load_sms_spam_shapes_and_labels():
    texts, labels = datasets.load_sms_spam()
    assert isinstance(texts, list)
    assert len(texts) == 5574
    assert all(isinstance(t, str) and t for t in texts)
    assert labels.shape == (5574,)
    assert set(np.unique(labels).tolist()) == {"ham", "spam"}
    # the collection is about 13 % spam
    assert 0.1 < np.mean(labels == "spam") < 0.2


def test_loaders_are_listed_in_all():
    assert sorted(datasets.__all__) == ["load_adult", "load_reuters", "load_sms_spam"]
