"""Small real data sets bundled with skgd, so examples run offline.

The files are public data sets, as distributed with the project (see
``skgd/datasets/data/README.md`` for provenance and licences):

- the SMS Spam Collection (Almeida & Hidalgo 2011, UCI, CC BY 4.0);
- "adult" (UCI Adult, discretised by Platt 1998; the LaSVM version);
- "reuters" (Reuters text features, the LaSVM version by Bottou).

The svmlight files come from the public ``tick-datasets`` repository
(BSD-3), which re-hosts the LaSVM / LIBSVM versions.
"""

import csv
import gzip
import io
from importlib import resources

import numpy as np
from sklearn.datasets import load_svmlight_file

__all__ = ["load_adult", "load_reuters", "load_sms_spam"]


def _path(name):
    return resources.files(__name__).joinpath("data", name)


def _svmlight_split(stem, n_features):
    out = []
    for part in ("trn", "tst"):
        with resources.as_file(_path(f"{stem}.{part}.bz2")) as path:
            X, y = load_svmlight_file(str(path), n_features=n_features)
        out += [X, y.astype(np.int64)]
    return tuple(out)


def load_adult():
    """UCI Adult (income > 50K), 123 binary features, labels -1/+1.

    Returns
    -------
    X_train : scipy.sparse.csr_matrix of shape (32561, 123), int64 indices
    y_train : ndarray of shape (32561,)
    X_test : scipy.sparse.csr_matrix of shape (16281, 123)
    y_test : ndarray of shape (16281,)
    """
    return _svmlight_split("adult", 123)


def load_reuters():
    """Reuters binary text classification, 8315 features, labels -1/+1.

    Returns
    -------
    X_train : scipy.sparse.csr_matrix of shape (7770, 8315), int64 indices
    y_train : ndarray of shape (7770,)
    X_test : scipy.sparse.csr_matrix of shape (3299, 8315)
    y_test : ndarray of shape (3299,)
    """
    return _svmlight_split("reuters", 8315)


def load_sms_spam():
    """The SMS Spam Collection: raw text messages labelled ham or spam.

    Returns
    -------
    texts : list of str, length 5574
    labels : ndarray of str, shape (5574,), values 'ham' or 'spam'
    """
    with resources.as_file(_path("SMSSpamCollection.tsv.gz")) as path:
        with gzip.open(path, "rb") as fh:
            text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
            reader = csv.reader(text, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader)
            if header[:2] != ["Label", "SMS"]:
                raise ValueError(f"unexpected header {header!r}")
            rows = [(row[0], "\t".join(row[1:])) for row in reader if row]
    labels = np.array([label for label, _ in rows])
    texts = [msg for _, msg in rows]
    return texts, labels
