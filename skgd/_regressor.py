"""MinibatchSGDRegressor."""

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import StrOptions

from ._base import BaseMinibatchSGD
from ._training import Trainer
from ._validation import overflow_sentence, sum_of_squares
from .losses import REGRESSION_LOSSES, Loss


class MinibatchSGDRegressor(RegressorMixin, BaseMinibatchSGD):
    """Linear regression trained by minibatch stochastic gradient descent.

    A drop-in replacement for :class:`sklearn.linear_model.SGDRegressor`:
    every constructor argument has the same name, default and meaning, plus
    ``batch_size``, gradient clipping and user-defined losses.

    Parameters
    ----------
    loss : str or Loss, default='squared_error'
        ``'squared_error'``, ``'huber'``, ``'epsilon_insensitive'``,
        ``'squared_epsilon_insensitive'``, or a :class:`skgd.losses.Loss`.
    penalty : {'l2', 'l1', 'elasticnet'} or None, default='l2'
        Regulariser; L1 produces exact zeros.
    alpha : float, default=1e-4
        Regularisation strength.
    l1_ratio : float, default=0.15
        Elastic-net mixing.
    fit_intercept : bool, default=True
        Whether to learn an intercept.
    max_iter : int, default=1000
        Maximum number of epochs of ``fit``.
    tol : float or None, default=1e-3
        Stopping tolerance on the epoch objective (or the validation R^2).
    shuffle : bool, default=True
        Shuffle the rows every epoch.
    verbose : int, default=0
        Print one line per epoch when > 0.
    epsilon : float, default=0.1
        Epsilon of the 'huber' and epsilon-insensitive losses.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling and the validation split.
    learning_rate : {'invscaling', 'constant', 'optimal', 'adaptive', 'pa1', 'pa2', \
            'auto'}, default='invscaling'
        Schedule, see :mod:`skgd.schedules`. 'pa1' and 'pa2' (passive-aggressive,
        ``loss='epsilon_insensitive'`` only) replace scikit-learn's deprecated
        ``PassiveAggressiveRegressor``. 'auto' measures its step on the data,
        with nothing to tune (``eta0`` unused; always averaged; see the user
        guide, 'A learning rate with nothing to tune').
    eta0 : float, default=0.01
        Initial learning rate; the aggressiveness ``C`` of 'pa1' and 'pa2'.
    power_t : float, default=0.25
        Exponent of 'invscaling'.
    early_stopping : bool, default=False
        Stop when the R^2 on a held-out split stops improving, and publish
        the training state of the epoch with the best R^2 (the later one of
        equal scores), where scikit-learn keeps its last epoch's.
    validation_fraction : float, default=0.1
        Size of that split.
    n_iter_no_change : int, default=5
        Patience of the stopping rule.
    warm_start : bool, default=False
        Start ``fit`` from the previous solution.
    average : bool or int, default=False
        Averaged SGD (see :class:`MinibatchSGDClassifier`).
    batch_size : int, default=1
        Samples per minibatch; 1 (the default) is scikit-learn's per-sample
        algorithm. See :class:`MinibatchSGDClassifier`.
    clip_norm : float or None, default=None
        Rescale each minibatch gradient to an L2 norm of at most this.
    clip_value : float or None, default=None
        Clip each minibatch gradient component to ``[-clip_value, clip_value]``.
    momentum : float, default=0.0
        Heavy-ball momentum (Polyak 1964), ``0 <= momentum < 1``: each step
        adds ``momentum`` times the previous one. It works with clipping,
        penalties (L2 as decoupled weight decay) and averaging, dense or
        sparse; on sparse data it costs a pass over all weights per step,
        as every weight moves with its velocity.
    nesterov : bool, default=False
        Use Nesterov's form of momentum (Sutskever et al. 2013); only with
        ``momentum > 0``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : ndarray of shape (1,)
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``); with
        ``early_stopping``, the epochs after the best one included.
    t_ : float
        Samples seen + 1 by the published model: with ``early_stopping``, by
        its best epoch.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
    loss_curve_ : list of float
        The objective the ``tol`` rule watches, per epoch (per ``partial_fit``
        call): the mean over the rows of loss plus penalty, each at the
        weights the row saw (weighted by sample weight unless the run is
        scikit-learn's per-sample algorithm).
    validation_scores_ : list of float
        Validation R^2 of the model after each epoch run (with
        ``early_stopping``); the published model is that of the last epoch
        with the highest.
    best_score_ : float
        ``max(validation_scores_)``: the published model's validation R^2.

    See Also
    --------
    sklearn.linear_model.SGDRegressor : The per-sample estimator this replaces.
    MinibatchSGDClassifier : The classification counterpart.

    Examples
    --------
    >>> import numpy as np
    >>> from skgd import MinibatchSGDRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(500, 3)
    >>> y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.randn(500)
    >>> reg = MinibatchSGDRegressor(random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.99
    True
    """

    _loss_names = REGRESSION_LOSSES

    _parameter_constraints: dict = {
        **BaseMinibatchSGD._parameter_constraints,
        "loss": [StrOptions(set(REGRESSION_LOSSES)), Loss],
    }

    def __init__(
        self,
        loss="squared_error",
        *,
        penalty="l2",
        alpha=0.0001,
        l1_ratio=0.15,
        fit_intercept=True,
        max_iter=1000,
        tol=1e-3,
        shuffle=True,
        verbose=0,
        epsilon=0.1,
        random_state=None,
        learning_rate="invscaling",
        eta0=0.01,
        power_t=0.25,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        warm_start=False,
        average=False,
        batch_size=1,
        clip_norm=None,
        clip_value=None,
        momentum=0.0,
        nesterov=False,
    ):
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.epsilon = epsilon
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.average = average
        self.batch_size = batch_size
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.momentum = momentum
        self.nesterov = nesterov

    def _targets(self, X, y, sample_weight, reset):
        fast = None if reset else self._fast_Xy(X, y, numeric=True)
        if fast is None:
            X, y = self._validate_X(X, y, reset=reset, y_numeric=True)
        else:
            X, y = fast
        y = y.astype(np.float64, copy=False)
        if not np.isfinite(sum_of_squares(y)):
            raise ValueError(
                f"{overflow_sentence()} y has values too large to train on (largest magnitude "
                f"{np.abs(y).max():.3g}): the squared errors overflow float64. Scale the "
                "targets (e.g. divide by their standard deviation, or use "
                "sklearn.compose.TransformedTargetRegressor)."
            )
        sw = self._check_sample_weight(sample_weight, X.shape[0])
        return X, y, sw

    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Fit the model by minibatch SGD over up to ``max_iter`` epochs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        coef_init : ndarray of shape (n_features,), default=None
        intercept_init : ndarray of shape (1,), default=None
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        with self._unchanged_on_error():
            self._check_params()
            X, y, sw = self._targets(X, y, sample_weight, reset=True)
            trainer = Trainer(self)
            coef_init, intercept_init, average_init = self._init_arrays(
                1, X.shape[1], coef_init, intercept_init
            )
            state = trainer.new_state(1, X.shape[1], X.dtype, coef_init, intercept_init,
                                      average_init, for_fit=True)
            n_iter, curve, val = trainer.fit_state(X, y.reshape(-1, 1), sw, state, stratify=y)
            for attr in ("validation_scores_", "best_score_"):
                self.__dict__.pop(attr, None)
            self._commit(state, n_iter, curve, val, incremental=False)
        return self

    def partial_fit(self, X, y, sample_weight=None):
        """One pass of minibatch SGD over a chunk of data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        with self._unchanged_on_error() as undo:
            first = not hasattr(self, "_state")
            self._check_params(for_partial_fit=True)
            X, y, sw = self._targets(X, y, sample_weight, reset=first)
            state = Trainer(self).new_state(1, X.shape[1], X.dtype) if first else self._state
            curve, _ = Trainer(self).partial_state(X, y.reshape(-1, 1), sw, state, undo)
            self._commit(state, 1, curve, incremental=True)
        return self

    def _block_arrays(self, X, y, sample_weight, class_weights=None):
        """Training arrays of a block of data, as ``fit`` makes them, for a
        model whose ``n_features_in_`` is set (skgd.dask prepares each
        worker's data with it): ``(X, Y, sample_weight, None)``."""
        X, y, sw = self._targets(X, y, sample_weight, reset=False)
        return X, y.reshape(-1, 1), sw, None

    def _shape_coef(self, coef):
        return coef.reshape(-1)

    def _shape_intercept(self, intercept):
        return intercept.reshape(1)

    def _shape_scores(self, scores):
        return scores

    def _score_scores(self, scores, y, sample_weight):
        return float(r2_score(y, scores[:, 0], sample_weight=sample_weight))

    def predict(self, X):
        """Predict targets.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        return self._decision(X).reshape(-1)
