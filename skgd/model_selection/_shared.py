"""Work shared across the candidates of a search, within one CV fold.

The search (``_search.py``) groups its candidates into *plans*: the
candidates of one group share the fitted earlier steps of a ``Pipeline``
(or have none, for a bare skgd estimator), and their final estimators are
trained by one :func:`skgd._fit_many.fit_together` call per fold. Each
candidate gets a result dict shaped exactly like the one scikit-learn's
``_fit_and_score`` returns, so scikit-learn's ``_format_results`` builds
``cv_results_`` from them unchanged.
"""

import numbers
import time
import traceback

import numpy as np
from joblib import logger
from sklearn.base import clone
from sklearn.metrics._scorer import _BaseScorer, _MultimetricScorer, _PassthroughScorer
from sklearn.model_selection._validation import _score
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils.metaestimators import _safe_split
from sklearn.utils.validation import _check_method_params, _num_samples

from .. import _fit_many
from .._classifier import MinibatchSGDClassifier
from .._regressor import MinibatchSGDRegressor
from .._report import collecting_warnings
from ..pipeline import Pipeline as _OnlinePipeline

_SKGD_ESTIMATORS = (MinibatchSGDClassifier, MinibatchSGDRegressor)


def shareable_estimator(estimator):
    """Whether the search can share work for ``estimator``: a skgd estimator,
    or a plain Pipeline (no caching memory, no transformed inputs, no
    messages of its own steps' fits) ending in one. skgd.pipeline's Pipeline
    counts as plain: it adds partial_fit and fits, predicts and scores as
    scikit-learn's does."""
    if isinstance(estimator, _SKGD_ESTIMATORS):
        return True
    if type(estimator) not in (Pipeline, _OnlinePipeline) or not estimator.steps:
        return False
    if (estimator.memory is not None or estimator.verbose
            or getattr(estimator, "transform_input", None)):
        return False
    return isinstance(estimator.steps[-1][1], _SKGD_ESTIMATORS)


def _freeze(value):
    """A hashable stand-in for a parameter value: equal for equal simple
    values, the object's identity otherwise (a grid hands every candidate the
    same object, so candidates using the same step instance still group)."""
    if value is None or isinstance(value, (str, bytes, bool, numbers.Number)):
        return (type(value).__name__, value)
    if isinstance(value, tuple):
        return ("tuple", tuple(_freeze(v) for v in value))
    return ("id", id(value))


def plan_candidates(estimator, candidate_params):
    """Split the candidates into shared groups and per-candidate fallbacks.

    Returns ``(groups, fallback)``: ``groups`` is a list of
    ``(prefix_params, [candidate indices])``, ``fallback`` a list of the
    indices scikit-learn's ``_fit_and_score`` evaluates one by one.
    """
    if not isinstance(estimator, Pipeline):
        return ([({}, list(range(len(candidate_params))))] if candidate_params else []), []
    names = [name for name, _ in estimator.steps]
    last, prefix_names = names[-1], set(names[:-1])
    groups, fallback = {}, []
    for index, params in enumerate(candidate_params):
        prefix_params = {}
        for key, value in params.items():
            if key.startswith(last + "__"):
                continue
            if key.split("__")[0] in prefix_names:
                prefix_params[key] = value
            else:
                break
        else:
            key = tuple(sorted((k, _freeze(v)) for k, v in prefix_params.items()))
            groups.setdefault(key, (prefix_params, []))[1].append(index)
            continue
        fallback.append(index)
    return list(groups.values()), fallback


def scores_transformed_data(scorer):
    """Whether scoring a Pipeline's final step on the transformed data gives
    exactly the Pipeline's score: true for scikit-learn's scorers, which only
    call the estimator's predict/decision/score methods; an arbitrary callable
    may look at the raw data or the Pipeline itself, so it gets the Pipeline."""
    scorers = scorer._scorers.values() if isinstance(scorer, _MultimetricScorer) else [scorer]
    return all(isinstance(s, (_BaseScorer, _PassthroughScorer)) for s in scorers)


def _error_scores(scorer, error_score):
    if isinstance(scorer, _MultimetricScorer):
        return {name: error_score for name in scorer._scorers}
    return error_score


def _format_exception(exc):
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _progress(verbose, split_progress, candidate_progress):
    """The "[CV 1/5; 2/4]" part of scikit-learn's ``_fit_and_score`` lines."""
    if verbose <= 2:
        return ""
    progress = f" {split_progress[0] + 1}/{split_progress[1]}"
    if verbose > 9:
        progress += f"; {candidate_progress[0] + 1}/{candidate_progress[1]}"
    return progress


def _params_msg(params):
    return ", ".join(f"{k}={params[k]}" for k in sorted(params))


def _print_start(progress, params):
    """The "[CV] START ..." line scikit-learn's ``_fit_and_score`` prints."""
    start_msg = f"[CV{progress}] START {_params_msg(params)}"
    print(f"{start_msg}{(80 - len(start_msg)) * '.'}")


def _print_end(verbose, progress, params, result, return_train_score):
    """The "[CV] END ..." line scikit-learn's ``_fit_and_score`` prints."""
    end_msg = f"[CV{progress}] END "
    params_msg = _params_msg(params)
    result_msg = params_msg + (";" if params_msg else "")
    test, train = result["test_scores"], result.get("train_scores")
    if verbose > 2:
        if isinstance(test, dict):
            for name in sorted(test):
                result_msg += f" {name}: ("
                if return_train_score:
                    result_msg += f"train={train[name]:.3f}, "
                result_msg += f"test={test[name]:.3f})"
        elif return_train_score:
            result_msg += f", score=(train={train:.3f}, test={test:.3f})"
        else:
            result_msg += f", score={test:.3f}"
    total = result["fit_time"] + result["score_time"]
    result_msg += f" total time={logger.short_format_time(total)}"
    print(end_msg + "." * (80 - len(end_msg) - len(result_msg)) + result_msg)


def _transform_or_none(prefix, X):
    """``X`` through the fitted earlier steps, step by step as a whole
    Pipeline's predict or score passes it (``prefix.transform`` would first
    check its own last step looks fitted, which a stateless step never
    does), or None if a step raises: each candidate's Pipeline then meets
    the error when scored, as in scikit-learn."""
    try:
        for _, step in prefix.steps:
            if step is not None and step != "passthrough":
                X = step.transform(X)
    except Exception:  # noqa: BLE001 - met again by each candidate's scorer
        return None
    return X


def _scored(estimator, final, X, Xt, shared_steps):
    """What a scorer gets: the final step and the transformed data when
    there are some, else the whole estimator and the raw data, copied if
    the estimator has shared earlier steps, which may transform in place
    (``copy=False``): each of scikit-learn's candidates has its own split,
    the training one as its own fit left it."""
    if Xt is not None:
        return final, Xt
    if shared_steps:
        return estimator, _safe_indexing(X, np.arange(_num_samples(X)))
    return estimator, X


def fit_and_score_group(
    base_estimator, X, y, *, train, test, split_progress, n_candidates, prefix_params,
    candidates, scorer, fit_params, score_params, return_train_score,
    error_score, verbose,
):
    """Evaluate the candidates of one group on one CV split.

    ``candidates`` is a list of ``(index, params)``. Returns a list of
    ``(index, result)`` where each result is the dict scikit-learn's
    ``_fit_and_score`` would have returned (with n_test_samples and times).
    Shared times (the earlier Pipeline steps, the grouped training, the
    transform of the test data) are divided equally among the candidates.
    """
    n = len(candidates)
    fit_params = _check_method_params(X, params=fit_params or {}, indices=train)
    score_params = score_params or {}
    score_params_train = _check_method_params(X, params=score_params, indices=train)
    score_params_test = _check_method_params(X, params=score_params, indices=test)
    is_pipeline = isinstance(base_estimator, Pipeline)
    if verbose > 9:
        for index, params in candidates:
            _print_start(_progress(verbose, split_progress, (index, n_candidates)), params)
    # Set before fitting, outside the error handling, as scikit-learn's
    # _fit_and_score does: an invalid parameter raises whatever error_score.
    estimators = [clone(base_estimator).set_params(**clone(params, safe=False))
                  for _, params in candidates]
    # Split as the candidates' own estimators would: a Pipeline is pairwise
    # (kernel rows and columns both split) as its first step, which the
    # candidates of a group share.
    X_train, y_train = _safe_split(estimators[0], X, y, train)
    X_test, y_test = _safe_split(estimators[0], X, y, test, train)
    start = time.time()
    prefix, Xt_train, notes = None, X_train, {}
    try:
        if is_pipeline and len(base_estimator.steps) > 1:
            # The earlier steps, fitted exactly as Pipeline.fit fits them.
            shared = clone(base_estimator).set_params(**clone(prefix_params, safe=False))
            prefix = Pipeline(shared.steps[:-1])
            Xt_train = prefix.fit_transform(X_train, y_train)
            for estimator in estimators:
                # The candidate's own earlier steps are never fitted: the
                # shared ones stand in, fitted with the same settings.
                estimator.steps = prefix.steps + [estimator.steps[-1]]
        finals = [e.steps[-1][1] if is_pipeline else e for e in estimators]
        # (the search gives one StepCapWarning for all its candidates)
        with collecting_warnings() as said:
            fitted = _fit_many.fit_together(
                finals, Xt_train, y_train, sample_weight=fit_params.get("sample_weight"))
        notes = {id(source): message for source, message, _ in reversed(said)}
    except Exception as exc:
        if error_score == "raise":
            raise
        # The shared steps failed: so would every candidate's Pipeline.fit.
        fitted, estimators, finals, prefix = [exc] * n, [None] * n, [None] * n, None
    fit_time = (time.time() - start) / n

    # Score the final steps on the transformed data, transformed once, unless
    # that cannot be done exactly; then each Pipeline scores the raw data.
    start = time.time()
    shared_steps = prefix is not None
    shares_transform = shared_steps and scores_transformed_data(scorer)
    Xt_test = _transform_or_none(prefix, X_test) if shares_transform else None
    shared_score_time = (time.time() - start) / n
    # Not Xt_train: a step's fit_transform may differ from its transform
    # (TargetEncoder cross-fits), and a Pipeline's score transforms.
    Xt_train_again = None
    if shares_transform and return_train_score:
        Xt_train_again = _transform_or_none(prefix, X_train)

    out = []
    rows = zip(candidates, estimators, finals, fitted, strict=True)
    for (index, params), estimator, final, item in rows:
        progress = _progress(verbose, split_progress, (index, n_candidates))
        result = {"n_test_samples": _num_samples(X_test), "fit_time": fit_time,
                  "step_cap_note": notes.get(id(final))}
        if isinstance(item, BaseException):
            if error_score == "raise":
                raise item
            result["fit_error"] = _format_exception(item)
            result["test_scores"] = _error_scores(scorer, error_score)
            if return_train_score:
                result["train_scores"] = _error_scores(scorer, error_score)
            result["score_time"] = 0.0
        else:
            result["fit_error"] = None
            start = time.time()
            result["test_scores"] = _score(
                *_scored(estimator, final, X_test, Xt_test, shared_steps), y_test, scorer,
                score_params_test, error_score)
            result["score_time"] = time.time() - start + shared_score_time
            if return_train_score:
                result["train_scores"] = _score(
                    *_scored(estimator, final, X_train, Xt_train_again, shared_steps),
                    y_train, scorer, score_params_train, error_score)
        if verbose > 1:
            _print_end(verbose, progress, params, result, return_train_score)
        out.append((index, result))
    return out

