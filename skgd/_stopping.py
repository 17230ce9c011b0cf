"""The ``tol`` / ``n_iter_no_change`` stopping rule, one per problem, and the
best epoch that early stopping keeps.

A fit trains one problem (a binary or multinomial classifier, a regressor)
or, in one-vs-rest, one binary problem per class. As scikit-learn's
``SGDClassifier``, each problem watches its own criterion and stops on its
own; the compiled pass keeps running for the others (one pass over the data
serves all classes), with a stopped class's weights frozen.

Patience is counted in epochs, as scikit-learn does, but never in fewer than
``n_iter_no_change * MIN_STEPS`` minibatch steps: with large batches on
small data an epoch may be a single step, and ``n_iter_no_change`` such
epochs are too few for the objective to move (a class-weighted run could
stop after a handful of steps, untrained). At ``batch_size=1`` an epoch is
``n_samples`` steps, so the rule is scikit-learn's unless the data has fewer
than ``MIN_STEPS`` rows, and then too, since an epoch is every row.
"""

import math

import numpy as np
from sklearn.utils.extmath import safe_sparse_dot

# the fewest steps an epoch of the patience stands for
MIN_STEPS = 100


def patience_epochs(n_iter_no_change, n_rows, batch_size):
    """Epochs without improvement after which a problem has converged:
    ``n_iter_no_change``, scaled up when an epoch has fewer steps than
    ``min(n_rows, MIN_STEPS)``."""
    steps = math.ceil(n_rows / max(1, min(batch_size, n_rows)))
    wanted = min(n_rows, MIN_STEPS)
    return n_iter_no_change * max(1, math.ceil(wanted / max(steps, 1)))


class StoppingRule:
    """Per-problem bookkeeping of scikit-learn's rule.

    A problem makes no progress in an epoch when its criterion (an objective
    to lower, or a validation score negated) is above its best so far minus
    ``tol`` (as in scikit-learn, a criterion equal to it is progress); after
    ``n_iter_no_change`` such epochs in a row it has converged, unless
    ``lower_rate`` says its learning rate can still be lowered (the
    'adaptive' schedule), which starts its count again.

    Parameters
    ----------
    n_problems : int
    tol : float or None
        None: never stop early.
    patience : int
        Epochs without improvement before a problem stops (see
        :func:`patience_epochs`).
    """

    def __init__(self, n_problems, tol, patience):
        self.tol = tol
        self.patience = patience
        self.best = np.full(n_problems, np.inf)
        self.no_improvement = np.zeros(n_problems, dtype=np.int64)
        self.active = np.ones(n_problems, dtype=bool)
        self.n_iter = np.zeros(n_problems, dtype=np.int64)

    def update(self, epoch, current, lower_rate, hold=False):
        """Record an epoch's criterion of each active problem.

        Parameters
        ----------
        epoch : int
        current : ndarray of shape (n_problems,)
            The criterion of each problem (lower is better); entries of
            stopped problems are ignored.
        lower_rate : callable
            ``lower_rate(k)`` lowers problem ``k``'s rate and returns True,
            or returns False when it cannot (then the problem stops).
        hold : bool
            The epoch does not count towards the patience (its best still
            counts): the step cap holds a decaying schedule's steps.

        Returns
        -------
        stopped : list of int
            The problems that converged at this epoch.
        """
        self.n_iter[self.active] = epoch
        if self.tol is None:
            return []
        stopped = []
        for k in np.flatnonzero(self.active):
            if hold:
                self.best[k] = min(self.best[k], current[k])
                continue
            if current[k] > self.best[k] - self.tol:
                self.no_improvement[k] += 1
            else:
                self.no_improvement[k] = 0
            self.best[k] = min(self.best[k], current[k])
            if self.no_improvement[k] >= self.patience:
                if lower_rate(k):
                    self.no_improvement[k] = 0
                else:
                    self.active[k] = False
                    stopped.append(int(k))
        return stopped

    @property
    def done(self):
        """Whether every problem has converged."""
        return not self.active.any()


class BestEpoch:
    """The epoch of an early-stopping fit whose model scored best on the
    validation set, and the training state it left.

    Of equal scores the later epoch is kept: its weights took smaller steps
    (the schedules decay) from more data. On small validation sets ties are
    common, and keeping the earlier one lost 0.4-1.6 points of mean test
    accuracy (iris, digits, wine; hinge and log loss; 20 seeds). Keeping
    costs a copy of the state at each epoch that scores at least as well as
    the best so far.
    """

    def __init__(self):
        self.score = -np.inf
        self.epoch = 0
        self.state = None
        self.frozen = {}

    def see(self, epoch, score, state, frozen):
        """Record epoch ``epoch``'s validation ``score`` of the model that
        ``state`` and the snapshots of the stopped one-vs-rest classes
        (``frozen``) make."""
        if score >= self.score:
            self.score, self.epoch = score, epoch
            self.state = state.copy()
            self.frozen = dict(frozen)

    def put_back(self, state):
        """Make ``state`` (in place: callers hold it) the model of the best
        epoch."""
        state.restore(self.state)
        if self.frozen:
            state.restore_outputs(self.frozen)


def snapshot_scores(X, snap, averaged):
    """Scores of one output from its :meth:`_engine.EngineState.snapshot_output`."""
    if averaged and "avg_coef" in snap:
        return safe_sparse_dot(X, snap["avg_coef"]) + snap["avg_intercept"]
    return safe_sparse_dot(X, snap["coef"]) + snap["intercept"]


def validation_split(est, n, stratify, sample_weight):
    """Early stopping's split of ``n`` rows: ``(train, validation)`` row
    indices, stratified for classifiers, as scikit-learn splits them."""
    # (imported here: model_selection costs a fit that does not stop early)
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    splitter = StratifiedShuffleSplit if est._is_classifier_like() else ShuffleSplit
    cv = splitter(test_size=est.validation_fraction, random_state=est.random_state)
    try:
        train, val = next(cv.split(np.zeros((n, 1)), stratify))
    except ValueError as exc:
        raise ValueError(
            f"Splitting {n} samples into a train set and a validation set with "
            f"validation_fraction={est.validation_fraction!r} failed ({exc}). "
            "Use more samples, change validation_fraction, or disable early_stopping."
        ) from exc
    if train.size == 0 or val.size == 0:
        raise ValueError(
            f"Splitting {n} samples with validation_fraction="
            f"{est.validation_fraction!r} led to an empty set. Use more samples, "
            "change validation_fraction, or disable early_stopping."
        )
    if not np.any(sample_weight[val] > 0):
        # scikit-learn's words, then which parameters decide the split
        raise ValueError(
            "The sample weights for validation set are all zero, consider using a "
            "different random state. (random_state and validation_fraction decide "
            "the split.)"
        )
    return np.sort(train).astype(np.int64), np.sort(val)
