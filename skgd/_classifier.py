"""MinibatchSGDClassifier: labels, class weights, one-vs-rest, probabilities."""

from numbers import Integral

import numpy as np
from joblib import effective_n_jobs
from scipy.special import expit, softmax
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets

from . import _labels as labels
from ._base import BaseMinibatchSGD
from ._training import Trainer
from ._validation import check_weight_magnitude
from .losses import (
    CLASSIFICATION_LOSSES,
    MULTINOMIAL_LOSSES,
    LogLoss,
    Loss,
    ModifiedHuber,
    MulticlassLoss,
    SoftmaxLoss,
)


class MinibatchSGDClassifier(ClassifierMixin, BaseMinibatchSGD):
    """Linear classifier trained by minibatch stochastic gradient descent.

    A drop-in replacement for :class:`sklearn.linear_model.SGDClassifier`:
    every constructor argument has the same name, default and meaning. On top
    it adds ``batch_size``, gradient clipping (``clip_norm``, ``clip_value``)
    and user-defined losses. One compiled call runs a whole epoch, and a
    K-class problem trains all K one-vs-rest models in the same pass.

    Parameters
    ----------
    loss : str or Loss, default='hinge'
        ``'hinge'``, ``'log_loss'``, ``'modified_huber'``, ``'squared_hinge'``,
        ``'perceptron'``, ``'squared_error'``, ``'huber'``,
        ``'epsilon_insensitive'``, ``'squared_epsilon_insensitive'``, or a
        :class:`skgd.losses.Loss` instance.
    penalty : {'l2', 'l1', 'elasticnet'} or None, default='l2'
        Regulariser. L1 uses the cumulative penalty (Tsuruoka et al. 2009)
        and produces exact zeros.
    alpha : float, default=1e-4
        Regularisation strength; also sets the 'optimal' learning rate.
    l1_ratio : float, default=0.15
        Elastic-net mixing, 0 <= l1_ratio <= 1.
    fit_intercept : bool, default=True
        Whether to learn intercepts.
    max_iter : int, default=1000
        Maximum number of epochs of ``fit``.
    tol : float or None, default=1e-3
        Stop when the epoch objective (or the validation score with
        ``early_stopping``) has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; each one-vs-rest class stops on its own,
        as in scikit-learn (user guide, "Stopping"). None disables the rule.
    shuffle : bool, default=True
        Shuffle the rows every epoch (and within each ``partial_fit`` chunk).
    verbose : int, default=0
        Print one line per epoch when > 0.
    epsilon : float, default=0.1
        Epsilon of the 'huber' and epsilon-insensitive losses.
    n_jobs : int or None, default=None
        Threads over which a one-vs-rest pass (more than two classes) splits
        its classes, as scikit-learn's one-vs-rest jobs: each thread trains
        its classes over the same rows. A binary or multinomial model (or
        a one-vs-rest pass too short to split) instead computes the scores
        and loss derivatives of a long batch's rows on ``n_jobs`` of
        numba's threads, then steps by them in order: from about 160 dense
        rows of 100 features, or 2800 sparse rows of 23 non-zeros, a batch
        (divided by the classes of a multinomial model). ``None`` means 1
        unless in a :func:`joblib.parallel_config` context; -1 means all
        cores. The model is bit for bit the one of ``n_jobs=1``. Passes
        with ``learning_rate='auto'``, passive-aggressive steps, shorter
        batches, streams of sparse chunks and passes too short to pay for
        a thread train on one thread; so do one-vs-rest passes with
        ``clip_norm`` (user guide, "Using every core").
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling and the validation split.
    learning_rate : {'optimal', 'constant', 'invscaling', 'adaptive', 'pa1', 'pa2', 'auto'}, \
            default='optimal'
        Schedule, see :mod:`skgd.schedules`. ``t`` counts samples. 'pa1' and
        'pa2' (passive-aggressive, ``loss='hinge'`` only) replace scikit-learn's
        deprecated ``PassiveAggressiveClassifier``. 'auto' measures its step on
        the data, with nothing to tune (``eta0`` unused; always averaged; see
        the user guide, 'A learning rate with nothing to tune').
    eta0 : float, default=0.01
        Initial rate of the 'constant', 'invscaling' and 'adaptive' schedules;
        the aggressiveness ``C`` of 'pa1' and 'pa2'.
    power_t : float, default=0.5
        Exponent of 'invscaling'.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified) and stop when
        its accuracy stops improving. Unlike scikit-learn, which keeps the
        last epoch's weights, the model published (and what ``partial_fit``
        or a warm start go on from) is the whole training state of the epoch
        whose model scored best on the validation set (the later one of
        equal scores).
    validation_fraction : float, default=0.1
        Size of the validation split.
    n_iter_no_change : int, default=5
        Patience of the stopping rule, in epochs (never fewer than
        ``n_iter_no_change * min(n_samples, 100)`` steps).
    class_weight : dict, 'balanced' or None, default=None
        Weight of each class. As in scikit-learn, one-vs-rest problem k
        weighs its positives by ``class_weight[k]`` and its negatives by 1;
        binary and multinomial models weigh each sample by its class's.
    warm_start : bool, default=False
        Start ``fit`` from the previous solution.
    average : bool or int, default=False
        Averaged SGD: ``coef_`` is the average of the weights over the steps,
        from the first sample (True) or from sample ``average`` (int).
    batch_size : int, default=1
        Samples per minibatch; 1 is classic per-sample SGD. ``t`` counts
        samples, as scikit-learn's does, and a step moves along the mean
        gradient of the batch by ``batch_size`` per-sample steps, capped by
        the data's curvature, the intercept apart from the weights (see
        :mod:`skgd.schedules`). So ``eta0`` keeps its per-sample meaning and
        accuracy changes little with ``batch_size``.
        The default is 1 so that a drop-in replacement of ``SGDClassifier``
        runs the same algorithm (the compiled per-sample loop is already
        faster than scikit-learn's); 32 to 512 give smoother steps on large
        data, and are what clipping and streaming chunks are usually paired
        with. On small data sets, large batches mean few steps per epoch, so
        the epoch-based ``tol`` rule may stop them early.
    clip_norm : float or None, default=None
        Rescale each minibatch gradient (loss part, intercepts included) to
        an L2 norm of at most ``clip_norm``.
    clip_value : float or None, default=None
        Clip each minibatch gradient component to ``[-clip_value, clip_value]``
        (applied before ``clip_norm`` when both are set).
    momentum : float, default=0.0
        Heavy-ball momentum (Polyak 1964), ``0 <= momentum < 1``: each step
        adds ``momentum`` times the previous one. It works with clipping,
        penalties (L2 as decoupled weight decay) and averaging, dense or
        sparse; on sparse data it costs a pass over all weights per step,
        as every weight moves with its velocity.
    nesterov : bool, default=False
        Use Nesterov's form of momentum (Sutskever et al. 2013); only with
        ``momentum > 0``.
    multi_class : {'ovr', 'multinomial'}, default='ovr'
        'ovr' trains one binary model per class (all in the same pass), as
        ``SGDClassifier`` does, with any loss: the default, for drop-in
        results. 'multinomial' trains one joint model over all classes:
        ``loss='log_loss'`` is softmax cross-entropy (calibrated
        ``predict_proba``), ``loss='hinge'`` the multiclass SVM loss of
        Weston & Watkins, or pass a :class:`skgd.losses.MulticlassLoss`.
        With two classes the published model is the score difference, of
        shape ``(1, n_features)`` as for 'ovr'.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Weights, in the dtype of the training data.
    intercept_ : ndarray of shape (1,) or (n_classes,)
    classes_ : ndarray of shape (n_classes,)
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``); with
        ``early_stopping``, the epochs after the best one included, as in
        scikit-learn.
    t_ : float
        Samples seen + 1 (scikit-learn's convention) by the published model:
        with ``early_stopping``, by its best epoch (``best_epoch *
        n_train_rows + 1``), whose state it is.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Only when X has string column names.
    loss_curve_ : list of float
        The objective the ``tol`` rule watches, per epoch (per ``partial_fit``
        call): the mean over the rows of loss plus penalty, each at the
        weights the row saw (weighted by sample and class weight unless the
        run is scikit-learn's per-sample algorithm); summed over the classes
        of a one-vs-rest model, a stopped class counting its last value.
    validation_scores_ : list of float
        Validation accuracy of the model after each epoch run (with
        ``early_stopping``; one-vs-rest classes that had stopped counted as
        they stopped). The published model is that of the last epoch with
        the highest score.
    best_score_ : float
        ``max(validation_scores_)``: the published model's validation
        accuracy (with ``early_stopping``).

    See Also
    --------
    sklearn.linear_model.SGDClassifier : The per-sample estimator this replaces.
    MinibatchSGDRegressor : The regression counterpart.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skgd import MinibatchSGDClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(),
    ...                     MinibatchSGDClassifier(loss="log_loss", random_state=0))
    >>> clf.fit(X, y).score(X, y) > 0.95
    True
    """

    _loss_names = CLASSIFICATION_LOSSES

    _parameter_constraints: dict = {
        **BaseMinibatchSGD._parameter_constraints,
        "loss": [StrOptions(set(CLASSIFICATION_LOSSES)), Loss],
        "n_jobs": [Integral, None],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "multi_class": [StrOptions({"ovr", "multinomial"})],
    }

    def __init__(
        self,
        loss="hinge",
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
        n_jobs=None,
        random_state=None,
        learning_rate="optimal",
        eta0=0.01,
        power_t=0.5,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        class_weight=None,
        warm_start=False,
        average=False,
        batch_size=1,
        clip_norm=None,
        clip_value=None,
        multi_class="ovr",
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
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.average = average
        self.batch_size = batch_size
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.momentum = momentum
        self.nesterov = nesterov
        self.multi_class = multi_class

    # ---------------------------------------------------------------- fitting

    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Fit the model by minibatch SGD over up to ``max_iter`` epochs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        coef_init : ndarray of shape (n_classes, n_features), default=None
            Initial weights (``(1, n_features)`` or ``(n_features,)`` for
            binary problems).
        intercept_init : ndarray of shape (n_classes,), default=None
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        with self._unchanged_on_error():
            self._check_params()
            X, y = self._validate_X(X, y, reset=True)
            if y.dtype.kind == "O":
                labels.check_one_label_type(y.tolist(), "y")
            classes, idx = labels.encode_labels(y)
            if classes.size < 2:
                raise ValueError(
                    "The number of classes has to be greater than one; got "
                    f"{classes.size} class."
                )
            sw = self._check_sample_weight(sample_weight, X.shape[0])
            n_out = self._n_outputs(classes.size)
            sw, out_weight = self._weigh_classes(
                sw, self._class_weights(classes, y, False), idx, n_out)
            trainer = Trainer(self)
            coef_init, intercept_init, average_init = self._init_arrays(
                n_out, X.shape[1], coef_init, intercept_init
            )
            state = trainer.new_state(n_out, X.shape[1], X.dtype, coef_init, intercept_init,
                                      average_init, for_fit=True)
            Y = self._targets(idx, classes.size)
            self.classes_ = classes  # early stopping scores need it
            n_iter, curve, val = trainer.fit_state(X, Y, sw, state, stratify=y,
                                                 out_weight=out_weight)
            for attr in ("validation_scores_", "best_score_"):
                self.__dict__.pop(attr, None)
            self._commit(state, n_iter, curve, val, incremental=False)
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One pass of minibatch SGD over a chunk of data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            All the labels the stream will ever contain. Required on the
            first call; optional (and must match) afterwards.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        with self._unchanged_on_error() as undo:
            first = not hasattr(self, "classes_")
            self._check_params(for_partial_fit=True)
            fast = None if first else self._fast_Xy(X, y, numeric=False)
            if fast is None:
                X, y = self._validate_X(X, y, reset=first)
                if y.dtype.kind == "O":
                    labels.check_one_label_type(y.tolist(), "y")
                check_classification_targets(y)
            else:  # labels are checked against classes_ below
                X, y = fast
            if first:
                if classes is None:
                    raise ValueError(
                        "classes must be passed on the first call to partial_fit."
                    )
                all_classes = labels.check_classes(classes)
                if all_classes.size < 2:
                    raise ValueError(
                        "The number of classes has to be greater than one; got "
                        f"{all_classes.size} class in `classes`."
                    )
            else:
                all_classes = self.classes_
                if classes is not None and not labels.same_classes(classes, all_classes):
                    raise ValueError(
                        f"`classes={np.unique(classes).tolist()}` is not the same as on "
                        f"the first call to partial_fit, which was {all_classes.tolist()}."
                    )
            idx = labels.label_index(y, all_classes)
            sw = self._check_sample_weight(sample_weight, X.shape[0])
            n_out = self._n_outputs(all_classes.size)
            sw, out_weight = self._weigh_classes(
                sw, self._class_weights(all_classes, y, True), idx, n_out)
            if first:
                state = Trainer(self).new_state(n_out, X.shape[1], X.dtype)
            else:
                state = self._state
                if state.n_outputs != n_out or state.outputs != self.multi_class:
                    raise ValueError(
                        f"multi_class={self.multi_class!r}, but this model was trained "
                        f"with multi_class={state.outputs!r}: its outputs mean different "
                        "things, so multi_class cannot change between partial_fit calls. "
                        "Call fit, or set it back."
                    )
            Y = self._targets(idx, all_classes.size)
            curve, _ = Trainer(self).partial_state(X, Y, sw, state, undo, out_weight=out_weight)
            self.classes_ = all_classes
            self._commit(state, 1, curve, incremental=True)
        return self

    def _block_arrays(self, X, y, sample_weight, class_weights):
        """Training arrays of a block of data, encoded as ``fit`` encodes them,
        from ``classes_`` and ``n_features_in_`` set beforehand (skgd.dask
        prepares each worker's data with it).

        Returns
        -------
        X, Y, sample_weight, out_weight
            Validated X, the engine's targets (see :meth:`_targets`), the
            sample weights with the class weights folded in, and the
            one-vs-rest output weights (or None).
        """
        fast = self._fast_Xy(X, y, numeric=False)  # (data validated already: cheap)
        X, y = fast if fast is not None else self._validate_X(X, y, reset=False)
        if y.dtype.kind == "O":
            labels.check_one_label_type(y.tolist(), "y")
        check_classification_targets(y)
        idx = labels.label_index(y, self.classes_)
        sw = self._check_sample_weight(sample_weight, X.shape[0])
        n_classes = self.classes_.size
        sw, out_weight = self._weigh_classes(sw, class_weights, idx,
                                             self._n_outputs(n_classes))
        return X, self._targets(idx, n_classes), sw, out_weight

    def _class_weights(self, classes, y, for_partial_fit):
        """The weight of each class, or None without ``class_weight``."""
        if self.class_weight is None:
            return None
        if self.class_weight == "balanced" and for_partial_fit:
            # scikit-learn's words, exactly: code may match on them
            raise ValueError(
                "class_weight 'balanced' is not supported for partial_fit. In order to "
                "use 'balanced' weights, use compute_class_weight('balanced', "
                "classes=classes, y=y). In place of y you can use a large enough sample "
                "of the full training set target to properly estimate the class "
                "frequency distributions. Pass the resulting weights as the "
                "class_weight parameter."
            )
        weights = compute_class_weight(self.class_weight, classes=classes, y=y)
        bad = ~np.isfinite(weights) | (weights < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"class_weight must be finite and non-negative; got {weights[i]} "
                f"for class {classes.tolist()[i]!r}."
            )
        if not weights.any():
            raise ValueError(
                f"class_weight is zero for every class ({self.class_weight!r}): nothing "
                "to learn from."
            )
        check_weight_magnitude(weights, "class_weight")
        return weights

    def _outputs(self):
        return self.multi_class

    def _per_output_problems(self, state):
        return state.outputs == "ovr" and state.n_outputs > 1

    def _n_threads(self):
        return effective_n_jobs(self.n_jobs)

    def _problem_scores(self, scores, y, sample_weight):
        """Accuracy of each class's binary problem (its score's sign against
        "is this class"), as scikit-learn's one-vs-rest early stopping."""
        truth = y[:, None] == self.classes_[None, :]
        right = (scores > 0) == truth
        return np.average(right, axis=0, weights=sample_weight)

    def _weigh_classes(self, sample_weight, class_weights, idx, n_out):
        """Apply the class weights: ``(sample_weight, out_weight)``.

        In one-vs-rest (more than two classes), as scikit-learn, problem k
        weights its positives by ``class_weight[k]`` and its negatives by 1:
        that is ``out_weight`` (see ``skgd._kernels.output_weight``). Binary
        and multinomial models weight each sample by its own class.
        """
        if class_weights is None:
            return sample_weight, None
        if self._multinomial() or n_out == 1:
            return labels.with_class_weights(sample_weight, class_weights, idx), None
        check_weight_magnitude(sample_weight * class_weights.max(),
                                "class_weight times sample_weight")
        out_weight = np.ones((n_out, 2))
        out_weight[:, 1] = class_weights
        return sample_weight, out_weight

    def _multinomial(self):
        return self.multi_class == "multinomial"

    def _n_outputs(self, n_classes):
        if self._multinomial():
            return n_classes  # one score per class, also for two classes
        return 1 if n_classes == 2 else n_classes

    def _targets(self, idx, n_classes):
        if self._multinomial():  # the class index, for a MulticlassLoss
            return idx.astype(np.float64).reshape(-1, 1)
        return labels.one_vs_rest_targets(idx, n_classes)

    def _loss_object(self):
        """The loss the engine trains with, checked against ``multi_class``."""
        if not self._multinomial():
            if isinstance(self.loss, MulticlassLoss):
                raise ValueError(
                    f"loss={self.loss!r} is a MulticlassLoss: it needs "
                    "multi_class='multinomial'."
                )
            return super()._loss_object()
        if isinstance(self.loss, MulticlassLoss):
            return self.loss
        if isinstance(self.loss, str) and self.loss in MULTINOMIAL_LOSSES:
            return MULTINOMIAL_LOSSES[self.loss](self.epsilon)
        raise ValueError(
            "multi_class='multinomial' trains with loss 'log_loss' (softmax), "
            "'hinge' (multiclass SVM) or a skgd.losses.MulticlassLoss; got "
            f"loss={self.loss!r}."
        )

    def _two_class_multinomial(self, n_outputs):
        # Two classes: publish the single score difference, the binary
        # convention (softmax of two scores = sigmoid of their difference).
        return self._multinomial() and n_outputs == 2

    def _shape_coef(self, coef):
        return coef[1:] - coef[:1] if self._two_class_multinomial(coef.shape[0]) else coef

    def _shape_intercept(self, intercept):
        if self._two_class_multinomial(intercept.shape[0]):
            return intercept[1:] - intercept[:1]
        return intercept

    def _shape_scores(self, scores):
        if self._two_class_multinomial(scores.shape[1]):
            return scores[:, 1:] - scores[:, :1]
        return scores

    def _write_public(self, weights, values, changed):
        if not self._two_class_multinomial(weights.shape[0]):
            return super()._write_public(weights, values, changed)
        # The published value is class 1's minus class 0's: class 0 keeps
        # its weights, class 1 takes the difference written.
        rows, values, changed = weights.reshape(2, -1), values.reshape(-1), changed.reshape(-1)
        rows[1, changed] = rows[0, changed] + values[changed]

    def _is_classifier_like(self):
        return True

    def _score_scores(self, scores, y, sample_weight):
        pred = self._labels_from_scores(self._shape_scores(scores))
        return float(np.average(pred == y, weights=sample_weight))

    # ------------------------------------------------------------- predicting

    def decision_function(self, X):
        """Signed distance to the hyperplane of each class.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        scores = self._decision(X)
        return scores.ravel() if scores.shape[1] == 1 else scores

    def _labels_from_scores(self, scores):
        if scores.ndim == 1 or scores.shape[1] == 1:
            return self.classes_[(scores.reshape(-1) > 0).astype(np.intp)]
        return self.classes_[scores.argmax(axis=1)]

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        return self._labels_from_scores(self._decision(X))

    def _has_proba(self):
        loss = self._loss_object()
        if not isinstance(loss, (LogLoss, ModifiedHuber, SoftmaxLoss)):
            raise AttributeError(
                f"probability estimates are not available for loss={self.loss!r}; "
                "use 'log_loss' or 'modified_huber'."
            )
        return True

    @available_if(_has_proba)
    def predict_proba(self, X):
        """Class probabilities (``log_loss`` and ``modified_huber`` only).

        For ``log_loss`` the binary probability is the logistic sigmoid of
        the score; with more classes the one-vs-rest sigmoids are normalised
        to sum to one, and a multinomial model gives the softmax of its
        scores. ``modified_huber`` gives ``(clip(score, -1, 1) + 1) / 2``,
        normalised likewise (Zadrozny & Elkan 2002).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        scores = self._decision(X)
        loss = self._loss_object()
        if isinstance(loss, SoftmaxLoss) and scores.shape[1] > 1:
            return softmax(scores, axis=1)
        if isinstance(loss, (LogLoss, SoftmaxLoss)):
            prob = expit(scores)
        else:
            prob = (np.clip(scores, -1.0, 1.0) + 1.0) / 2.0
        if prob.shape[1] == 1:
            return np.hstack([1.0 - prob, prob])
        total = prob.sum(axis=1, keepdims=True)
        empty = total[:, 0] == 0
        prob[empty] = 1.0
        total[empty] = prob.shape[1]
        return prob / total

    @available_if(_has_proba)
    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))
