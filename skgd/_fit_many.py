"""Train several skgd estimators on the same data in one call.

:func:`fit_together` is the entry point the model-selection searches
(:mod:`skgd.model_selection`) use for the candidates that share a CV fold.
This version fits the estimators one after the other; a version training
all of them in one compiled pass can replace it without changing callers.
"""

__all__ = ["fit_together"]


def fit_together(estimators, X_train, y_train, sample_weight=None):
    """Fit each of several unfitted skgd estimators on the same training data.

    Parameters
    ----------
    estimators : list of MinibatchSGDClassifier or MinibatchSGDRegressor
        Unfitted estimators, each with its own parameters set. They are
        fitted in place.
    X_train : {array-like, sparse matrix} of shape (n_samples, n_features)
        Training data, shared by all the estimators.
    y_train : array-like of shape (n_samples,)
        Target values, shared by all the estimators.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights applied to individual samples, shared by all the estimators.

    Returns
    -------
    results : list
        One item per estimator, in order: the estimator itself, fitted in
        place, or the exception its fit raised. One estimator's failure
        does not stop the others from being fitted.
    """
    results = []
    for estimator in estimators:
        try:
            if sample_weight is None:
                estimator.fit(X_train, y_train)
            else:
                estimator.fit(X_train, y_train, sample_weight=sample_weight)
        except Exception as exc:  # noqa: BLE001 - returned, the caller reports it per estimator
            results.append(exc)
        else:
            results.append(estimator)
    return results
