"""GridSearchCV and RandomizedSearchCV sharing work across candidates.

Both are scikit-learn's searches with one part replaced: the evaluation of
the candidates on the CV splits (scikit-learn's ``evaluate_candidates``
closure inside ``BaseSearchCV.fit``). Candidate generation (``_run_search``),
``cv_results_`` (``_format_results``), the choice of the best candidate, the
refit and every fitted attribute stay scikit-learn's.
"""

import time
from collections import defaultdict
from inspect import signature
from itertools import product

import numpy as np
from sklearn import model_selection as _sk
from sklearn.base import _fit_context, clone, is_classifier
from sklearn.metrics._scorer import _MultimetricScorer
from sklearn.model_selection._split import check_cv
from sklearn.model_selection._validation import (
    _fit_and_score,
    _insert_error_scores,
    _warn_or_raise_about_fit_failures,
)
from sklearn.utils import indexable
from sklearn.utils.metadata_routing import _routing_enabled
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _check_method_params

from .._report import collecting_warnings, warn_user
from ..exceptions import StepCapWarning
from ._shared import fit_and_score_group, plan_candidates, shareable_estimator

# scikit-learn 1.9 passes the search to _fit_and_score (for callbacks).
_FIT_AND_SCORE_TAKES_CALLER = "caller" in signature(_fit_and_score).parameters


class _SharedWorkSearchMixin:
    """Replaces the candidate-by-candidate evaluation of scikit-learn's
    searches by one sharing work within each fold; falls back to
    scikit-learn's own ``fit`` for what it does not handle."""

    def _shares_work(self, params):
        """Whether this fit can take the shared path (else scikit-learn's)."""
        if _routing_enabled():  # routed metadata may reach any step
            return False
        # Callbacks follow each candidate's fit, which grouped training merges.
        if getattr(self, "_skl_callbacks", None) or hasattr(self, "_parent_callback_ctx"):
            return False
        if not shareable_estimator(self.estimator):
            return False
        # Only the split's groups, and sample_weight for a bare estimator.
        allowed = {"groups"} if hasattr(self.estimator, "steps") else {"groups", "sample_weight"}
        return set(params) <= allowed

    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters, sharing work within each fold.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; raw documents for a Pipeline starting with a text
            vectorizer.
        y : array-like of shape (n_samples,), default=None
            Target values.
        **params : dict of str -> object
            ``groups``, passed to the CV splitter, and parameters passed to
            the estimator's fit (``sample_weight`` is also passed to scorers
            accepting it). Any fit parameter other than ``sample_weight`` for
            a bare skgd estimator makes the search scikit-learn's own.

        Returns
        -------
        self : object
            The fitted search.
        """
        if not self._shares_work(params):
            return super().fit(X, y, **params)
        return self._fit_sharing(X, y, **params)

    @_fit_context(prefer_skip_nested_validation=False)
    def _fit_sharing(self, X, y=None, **params):
        # The steps of scikit-learn's BaseSearchCV.fit, with evaluate_candidates
        # replaced; kept in the same order so the attributes are the same.
        scorers, refit_metric = self._get_scorers()
        X, y = indexable(X, y)
        params = _check_method_params(X, params=params)
        routed_params = self._get_routed_params_for_fit(params)
        # scikit-learn 1.9's _run_search takes a callback context (a no-op one
        # here: a search with callbacks is scikit-learn's); older ones do not.
        root_ctx = None
        if "callback_ctx" in signature(self._run_search).parameters:
            root_ctx = self._init_callback_context(
                max_subtasks=1 + (self.refit is not False)
            ).call_on_fit_task_begin(estimator=self, X=X, y=y)
        self._checked_cv_orig = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        split_params = routed_params.splitter.split
        if hasattr(self, "_check_input_parameters"):  # scikit-learn >= 1.5's hook
            self._check_input_parameters(X=X, y=y, split_params=split_params)
        self.n_splits_ = self._checked_cv_orig.get_n_splits(X, y, **split_params)
        base_estimator = clone(self.estimator)

        kwargs = dict(
            scorer=scorers, fit_params=routed_params.estimator.fit,
            score_params=routed_params.scorer.score,
            return_train_score=self.return_train_score, error_score=self.error_score,
            verbose=self.verbose,
        )
        all_params, all_out, all_more, all_notes = [], [], defaultdict(list), []
        results = {}
        # Threads: skgd's compiled passes release the GIL, and the shared
        # steps' output then needs no copying between processes. scikit-learn's
        # Parallel and delayed: the tasks see the caller's sklearn config.
        parallel = Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch, prefer="threads")
        with parallel:

            def evaluate_candidates(candidate_params, cv=None, more_results=None,
                                    callback_ctx=None):
                nonlocal results
                cv = cv or self._checked_cv_orig
                candidate_params = list(candidate_params)
                splits = list(cv.split(X, y, **split_params))
                if len(splits) != self.n_splits_:
                    raise ValueError(
                        "cv.split and cv.get_n_splits return inconsistent results. "
                        f"Expected {self.n_splits_} splits, got {len(splits)}")
                out = self._evaluate(parallel, base_estimator, X, y, candidate_params,
                                     splits, kwargs)
                # (skgd's own field, kept out of what scikit-learn formats)
                all_notes.extend(o.pop("step_cap_note", None) for o in out)
                if not out:
                    raise ValueError("No fits were performed. Was the CV iterator empty? "
                                     "Were there no candidates?")
                _warn_or_raise_about_fit_failures(out, self.error_score)
                if callable(self.scoring):
                    _insert_error_scores(out, self.error_score)
                all_params.extend(candidate_params)
                all_out.extend(out)
                for key, value in (more_results or {}).items():
                    all_more[key].extend(value)
                results = self._format_results(all_params, self.n_splits_, all_out, all_more)
                return results

            if root_ctx is None:
                self._run_search(evaluate_candidates)
            else:
                self._run_search(evaluate_candidates, callback_ctx=root_ctx)
            first_test_score = all_out[0]["test_scores"]
            self.multimetric_ = isinstance(first_test_score, dict)
            if callable(self.scoring) and self.multimetric_:
                self._check_refit_for_multimetric(first_test_score)
                refit_metric = self.refit

        if self.refit or not self.multimetric_:
            self.best_index_ = self._select_best_index(self.refit, refit_metric, results)
            if not callable(self.refit):
                self.best_score_ = results[f"mean_test_{refit_metric}"][self.best_index_]
            self.best_params_ = results["params"][self.best_index_]
        refit_notes = []
        if self.refit:
            self.best_estimator_ = clone(base_estimator).set_params(
                **clone(self.best_params_, safe=False))
            start = time.time()
            fit_args = (X,) if y is None else (X, y)
            with collecting_warnings() as refit_notes:
                self.best_estimator_.fit(*fit_args, **routed_params.estimator.fit)
            self.refit_time_ = time.time() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        self.scorer_ = scorers._scorers if isinstance(scorers, _MultimetricScorer) else scorers
        results["step_capped"] = _step_capped(all_notes, len(all_params), self.n_splits_)
        self.cv_results_ = results
        _warn_step_caps(results, [note for note in all_notes if note],
                        [message for _, message, _ in refit_notes])
        if root_ctx is not None:
            root_ctx.call_on_fit_task_end(estimator=self, X=X, y=y)
        return self

    def _evaluate(self, parallel, base_estimator, X, y, candidate_params, splits, kwargs):
        """The results of every candidate on every split, ordered as
        scikit-learn's (candidate-major): one task per split and group of
        candidates sharing work, one ``_fit_and_score`` per fallback pair."""
        n_candidates, n_splits = len(candidate_params), len(splits)
        if self.verbose > 0:
            print(f"Fitting {n_splits} folds for each of {n_candidates} candidates,"
                  f" totalling {n_candidates * n_splits} fits")
        groups, fallback = plan_candidates(base_estimator, candidate_params)
        tasks = []
        for (split_idx, (train, test)), (prefix_params, indices) in product(
                enumerate(splits), groups):
            tasks.append(delayed(fit_and_score_group)(
                base_estimator, X, y, train=train, test=test,
                split_progress=(split_idx, n_splits), n_candidates=n_candidates,
                prefix_params=prefix_params,
                candidates=[(i, candidate_params[i]) for i in indices], **kwargs))
        keys = []
        caller = {"caller": self} if _FIT_AND_SCORE_TAKES_CALLER else {}
        for index, (split_idx, (train, test)) in product(fallback, enumerate(splits)):
            keys.append((index, split_idx))
            tasks.append(delayed(_fit_and_score)(
                clone(base_estimator), X, y, train=train, test=test,
                parameters=candidate_params[index], split_progress=(split_idx, n_splits),
                candidate_progress=(index, n_candidates), return_n_test_samples=True,
                return_times=True, **caller, **kwargs))
        n_group_tasks = len(tasks) - len(keys)
        out = [None] * (n_candidates * n_splits)
        for task_idx, task_out in enumerate(parallel(tasks)):
            if task_idx < n_group_tasks:
                split_idx = task_idx // len(groups)
                for index, result in task_out:
                    out[index * n_splits + split_idx] = result
            else:
                index, split_idx = keys[task_idx - n_group_tasks]
                out[index * n_splits + split_idx] = task_out
        return out


class GridSearchCV(_SharedWorkSearchMixin, _sk.GridSearchCV):
    """Exhaustive search over a parameter grid, sharing work across candidates.

    scikit-learn's :class:`sklearn.model_selection.GridSearchCV` (same
    parameters, methods, attributes and results), faster for skgd estimators:
    within each CV fold,

    - for a ``Pipeline`` ending in a skgd estimator, the earlier steps are
      fitted once per distinct setting of their own parameters, and their
      transformed training and test data are reused by every candidate with
      that setting (a ``TfidfVectorizer`` is fitted once per fold when the
      grid varies only the classifier's parameters);
    - the final skgd estimators of the candidates sharing those steps are
      trained by one grouped call.

    Each candidate's scores equal scikit-learn's. Its ``mean_fit_time`` and
    ``mean_score_time`` include an equal share of the shared work: the time
    of the shared steps and of the grouped training is divided equally
    among the candidates that shared them, and so is the transform of the
    test data. Shared steps assume deterministic fitting: a step with
    randomness and no fixed ``random_state`` is fitted once, not once per
    candidate. And estimators with ``random_state=None`` draw from NumPy's
    global random state in another order (fold by fold, where scikit-learn
    goes candidate by candidate): after ``np.random.seed`` alone, the
    scores are reproducible but not scikit-learn's. Fixed ``random_state``
    values (ints or ``RandomState`` instances) give scikit-learn's scores.

    Anything else is scikit-learn's search, unchanged: other estimators,
    candidates setting the Pipeline's own parameters (``steps``,
    ``memory``, ...) or replacing its final step (evaluated one by one,
    within the same search), a Pipeline with ``memory``, ``verbose`` or
    ``transform_input``, fit parameters other than ``sample_weight`` for a
    bare skgd estimator, metadata routing enabled, and callbacks set with
    ``set_callbacks``. With a callable ``scoring``, a Pipeline's
    candidates are scored as whole Pipelines on the raw test data.

    Parameters
    ----------
    estimator : estimator object
        The estimator to tune: a skgd estimator, or a ``Pipeline`` ending in
        one, for the shared evaluation; any scikit-learn estimator otherwise.
    param_grid : dict or list of dict
        Parameter names (``step__param`` inside a Pipeline) mapped to lists
        of settings to try.
    scoring : str, callable, list, tuple or dict, default=None
        The score(s) to evaluate on the test splits, as in scikit-learn; None
        uses the estimator's ``score``.
    n_jobs : int, default=None
        The number of folds and groups of candidates evaluated in parallel
        (in threads). None means 1 unless in a ``joblib.parallel_backend``
        context; -1 means all processors.
    refit : bool, str or callable, default=True
        Refit the best candidate on the whole data set; with several
        metrics, the name of the one choosing it, or a callable choosing
        ``best_index_`` from ``cv_results_``.
    cv : int, cross-validation generator or iterable, default=None
        The splitting strategy; None is 5-fold (stratified for classifiers).
    verbose : int, default=0
        Above 0, the number of fits; above 1, one line per fit; above 2, its
        score; above 9, a line as each fit starts (a group's candidates all
        start together).
    pre_dispatch : int or str, default='2*n_jobs'
        The number of tasks dispatched ahead in parallel runs.
    error_score : 'raise' or numeric, default=np.nan
        The score of a candidate whose fit raised on a split ('raise'
        re-raises the error); a ``FitFailedWarning`` reports the failures.
    return_train_score : bool, default=False
        Also score each candidate on its training split.

    Attributes
    ----------
    cv_results_ : dict of numpy (masked) ndarrays
        Per-candidate scores, ranks, times and parameters, as in
        scikit-learn; plus ``step_capped`` (when work was shared): whether
        the step cap shortened the candidate's steps in one of its fits.
    best_estimator_ : estimator
        The best candidate refitted on the whole data (if ``refit``).
    best_score_ : float
        The mean cross-validated score of the best candidate.
    best_params_ : dict
        The parameters of the best candidate.
    best_index_ : int
        The index of the best candidate in ``cv_results_``.
    scorer_ : function or dict
        The scorer(s) used on the test splits.
    n_splits_ : int
        The number of cross-validation splits.
    refit_time_ : float
        Seconds spent refitting the best candidate.
    multimetric_ : bool
        Whether several metrics were evaluated.
    classes_ : ndarray of shape (n_classes,)
        The class labels (classifiers, if ``refit``).
    n_features_in_ : int
        The number of features seen during fit (if ``refit``).
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        The feature names seen during fit, when they are all strings.

    See Also
    --------
    RandomizedSearchCV : The same sharing, over sampled candidates.
    sklearn.model_selection.GridSearchCV : The search this one reproduces.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skgd import MinibatchSGDClassifier
    >>> from skgd.model_selection import GridSearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> search = GridSearchCV(MinibatchSGDClassifier(random_state=0),
    ...                       {"alpha": [1e-4, 1e-3], "batch_size": [8, 32]}, cv=3)
    >>> search.fit(X, y).best_params_  # doctest: +SKIP
    {'alpha': 0.001, 'batch_size': 8}
    """


class RandomizedSearchCV(_SharedWorkSearchMixin, _sk.RandomizedSearchCV):
    """Randomized search over parameter settings, sharing work across candidates.

    scikit-learn's :class:`sklearn.model_selection.RandomizedSearchCV` (same
    parameters, methods, attributes and results for the same
    ``random_state``), with the work sharing of :class:`GridSearchCV`: per
    CV fold, a Pipeline's earlier steps fitted once per distinct setting of
    their own parameters, and the final skgd estimators trained by one
    grouped call. Shared times are divided equally among the candidates
    that shared them; what falls back to scikit-learn's own search, and
    what unfixed random states change, are listed in :class:`GridSearchCV`.

    Parameters
    ----------
    estimator : estimator object
        The estimator to tune: a skgd estimator, or a ``Pipeline`` ending in
        one, for the shared evaluation; any scikit-learn estimator otherwise.
    param_distributions : dict or list of dict
        Parameter names mapped to distributions (with an ``rvs`` method) or
        lists of settings to sample from.
    n_iter : int, default=10
        The number of candidates sampled.
    scoring : str, callable, list, tuple or dict, default=None
        The score(s) to evaluate on the test splits; None uses the
        estimator's ``score``.
    n_jobs : int, default=None
        The number of folds and groups of candidates evaluated in parallel
        (in threads).
    refit : bool, str or callable, default=True
        Refit the best candidate on the whole data set (see
        :class:`GridSearchCV`).
    cv : int, cross-validation generator or iterable, default=None
        The splitting strategy; None is 5-fold (stratified for classifiers).
    verbose : int, default=0
        Above 0, the number of fits; above 1, one line per fit.
    pre_dispatch : int or str, default='2*n_jobs'
        The number of tasks dispatched ahead in parallel runs.
    random_state : int, RandomState instance or None, default=None
        Seeds the sampling of the candidates.
    error_score : 'raise' or numeric, default=np.nan
        The score of a candidate whose fit raised on a split.
    return_train_score : bool, default=False
        Also score each candidate on its training split.

    Attributes
    ----------
    cv_results_ : dict of numpy (masked) ndarrays
        Per-candidate scores, ranks, times and parameters, as in
        scikit-learn; plus ``step_capped`` (when work was shared): whether
        the step cap shortened the candidate's steps in one of its fits.
    best_estimator_ : estimator
        The best candidate refitted on the whole data (if ``refit``).
    best_score_ : float
        The mean cross-validated score of the best candidate.
    best_params_ : dict
        The parameters of the best candidate.
    best_index_ : int
        The index of the best candidate in ``cv_results_``.
    scorer_ : function or dict
        The scorer(s) used on the test splits.
    n_splits_ : int
        The number of cross-validation splits.
    refit_time_ : float
        Seconds spent refitting the best candidate.
    multimetric_ : bool
        Whether several metrics were evaluated.
    classes_ : ndarray of shape (n_classes,)
        The class labels (classifiers, if ``refit``).
    n_features_in_ : int
        The number of features seen during fit (if ``refit``).
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        The feature names seen during fit, when they are all strings.

    See Also
    --------
    GridSearchCV : The same sharing, over every setting of a grid.
    sklearn.model_selection.RandomizedSearchCV : The search this one reproduces.

    Examples
    --------
    >>> from scipy.stats import loguniform
    >>> from sklearn.datasets import load_iris
    >>> from skgd import MinibatchSGDClassifier
    >>> from skgd.model_selection import RandomizedSearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> search = RandomizedSearchCV(MinibatchSGDClassifier(random_state=0),
    ...                             {"alpha": loguniform(1e-5, 1e-2)}, n_iter=4,
    ...                             cv=3, random_state=0)
    >>> search.fit(X, y).best_index_  # doctest: +SKIP
    2
    """


def _step_capped(notes, n_candidates, n_splits):
    """Whether the step cap shortened a candidate's steps in one of its fits
    (``notes``, each fit's note or None, candidate-major as scikit-learn
    orders the fits)."""
    return np.array([any(notes[c * n_splits + s] for s in range(n_splits))
                     for c in range(n_candidates)], dtype=bool)


def _warn_step_caps(results, cv_notes, refit_notes):
    """One :class:`~skgd.StepCapWarning` for the whole search (each fit gives
    its own: a search of many candidates gave dozens), naming the candidates
    whose steps the cap shortened, with the first fit's words."""
    capped = np.flatnonzero(results["step_capped"])
    if capped.size:
        shown = ", ".join(repr(results["params"][c]) for c in capped[:3])
        more = f" and {capped.size - 3} more" if capped.size > 3 else ""
        refit = ", and of the refit" if refit_notes else ""
        warn_user(f"The step cap shortened the steps of {capped.size} of "
                  f"{len(results['params'])} candidates of this search ({shown}{more}; "
                  f"cv_results_['step_capped'] says which{refit}): their runs differ from "
                  f"scikit-learn's. The first: {cv_notes[0]}", StepCapWarning)
    elif refit_notes:
        warn_user(refit_notes[0], StepCapWarning)
