"""Pipelines that learn from a stream: scikit-learn's ``Pipeline`` with ``partial_fit``.

scikit-learn's :class:`sklearn.pipeline.Pipeline` has no ``partial_fit``, so
``make_pipeline(HashingVectorizer(), MinibatchSGDClassifier())`` cannot be
trained chunk by chunk. :class:`Pipeline` here is scikit-learn's (``fit``,
``predict``, parameters, slicing, searches and display are inherited
unchanged) plus :meth:`Pipeline.partial_fit`.
"""

import copy

from sklearn.base import _fit_context
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline as _SkPipeline
from sklearn.pipeline import make_pipeline as _sk_make_pipeline
from sklearn.utils._user_interface import _print_elapsed_time
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.frozen import FrozenEstimator
except ImportError:  # pragma: no cover - older scikit-learn has no frozen estimators
    FrozenEstimator = ()

__all__ = ["Pipeline", "make_pipeline"]

# How partial_fit treats an earlier step.
_SKIP, _LEARN, _TRANSFORM = "skip", "learn", "transform"


def _final_estimator_has_partial_fit(pipeline):
    """``available_if`` check: ``partial_fit`` exists when the last step has one."""
    return hasattr(pipeline._final_estimator, "partial_fit")


class Pipeline(_SkPipeline):
    """scikit-learn's ``Pipeline``, plus ``partial_fit`` for learning from a stream.

    Everything but :meth:`partial_fit` is
    :class:`sklearn.pipeline.Pipeline`'s: the same parameters, ``fit``,
    ``predict``, ``score``, ``get_params``/``set_params``, slicing,
    ``named_steps``, searches and HTML display. ``partial_fit`` exists (for
    ``hasattr``) only when the last step has a ``partial_fit``.

    Parameters
    ----------
    steps : list of tuples
        ``(name, estimator)`` pairs, as for scikit-learn's ``Pipeline``: the
        earlier steps transform, the last one is the estimator.
    transform_input : list of str, default=None
        As for scikit-learn's ``Pipeline`` (metadata routing only); not used
        by :meth:`partial_fit`, which refuses it.
    memory : str or object with the joblib.Memory interface, default=None
        As for scikit-learn's ``Pipeline``: caches the fitted transformers of
        ``fit``. :meth:`partial_fit` updates the steps in place and caches
        nothing.
    verbose : bool, default=False
        Print the time each step takes, in ``fit`` and in every
        :meth:`partial_fit` call.

    See Also
    --------
    make_pipeline : Build a Pipeline naming its steps after their classes.
    sklearn.pipeline.Pipeline : The parent class.

    Examples
    --------
    >>> from sklearn.feature_extraction.text import HashingVectorizer
    >>> from skgd import MinibatchSGDClassifier
    >>> from skgd.pipeline import make_pipeline
    >>> pipe = make_pipeline(HashingVectorizer(n_features=2**10),
    ...                      MinibatchSGDClassifier(random_state=0))
    >>> chunks = [(["free prize now", "see you at lunch"], [1, 0]),
    ...           (["win cash today", "call me later"], [1, 0])]
    >>> for texts, labels in chunks:
    ...     pipe = pipe.partial_fit(texts, labels, classes=[0, 1])
    >>> pipe.predict(["free cash prize"]).shape
    (1,)
    """

    def _partial_fit_kind(self, name, step):
        """How ``partial_fit`` treats the earlier step ``name``: skipped,
        learning from the chunk then transforming it, or transforming only.
        Raises a ``TypeError`` for a step that must learn but cannot."""
        if step is None or step == "passthrough":
            return _SKIP
        # A FrozenEstimator forwards partial_fit to the estimator it wraps
        # (its __getattr__ does); frozen means it must not learn.
        if hasattr(step, "partial_fit") and not isinstance(step, FrozenEstimator):
            return _LEARN
        try:
            # Passes for a stateless step (tags' requires_fit is False, e.g.
            # HashingVectorizer) and for a fitted one, used as it is.
            check_is_fitted(step)
        except NotFittedError:
            raise TypeError(
                f"Step {name!r} ({type(step).__name__}) cannot learn from a stream: it "
                f"must be fitted before it transforms, and it has no partial_fit to "
                f"learn chunk by chunk (a {type(step).__name__} learns from the whole "
                f"data at once). Fit it beforehand on representative data (a fitted "
                f"step is used as it is), or use a stateless step (HashingVectorizer "
                f"instead of a TfidfVectorizer or CountVectorizer) or one with "
                f"partial_fit (StandardScaler, MaxAbsScaler, IncrementalPCA, ...). "
                f"Nothing was changed."
            ) from None
        return _TRANSFORM

    def _route_partial_fit_params(self, params):
        """Split ``params`` per step: ``name__param`` for the step ``name``, a
        name without ``__`` for the last step."""
        names = [name for name, _ in self.steps]
        last = names[-1]
        routed = {name: {} for name in names}
        for key, value in params.items():
            name, sep, param = key.partition("__")
            if not sep:
                name, param = last, key
            elif name not in routed:
                raise ValueError(
                    f"Pipeline.partial_fit got the parameter {key!r}, but the pipeline has "
                    f"no step {name!r}; its steps are {names}.")
            if param in routed[name]:
                raise ValueError(
                    f"Pipeline.partial_fit got the parameter {param!r} of the step {name!r} "
                    f"twice (as {param!r} and as {name + '__' + param!r}).")
            routed[name][param] = value
        return routed

    @available_if(_final_estimator_has_partial_fit)
    @_fit_context(
        # the steps are validated by their own partial_fit
        prefer_skip_nested_validation=False
    )
    def partial_fit(self, X, y=None, **params):
        """Train every step on one chunk of data, in order.

        Each earlier step, in order,

        - with a ``partial_fit`` (``StandardScaler``, ``MaxAbsScaler``,
          ``IncrementalPCA``, ``MiniBatchKMeans``, ...), learns from the chunk
          (``partial_fit(Xt, y)``), then transforms it (``HashingVectorizer``
          has a ``partial_fit`` too, which does nothing);
        - without one, transforms the chunk as it is when it needs no fitting
          (``FunctionTransformer``, ``Normalizer``: scikit-learn's tag
          ``requires_fit`` is False), when it is already fitted, or when it is
          a ``FrozenEstimator``;
        - ``'passthrough'`` or ``None``, is skipped.

        Then the last step's ``partial_fit(Xt, y, **params)``. A step that
        needs fitting, is not fitted and has no ``partial_fit`` (an unfitted
        ``TfidfVectorizer``) cannot learn from a stream: a ``TypeError``
        naming it is raised before any step is changed.

        If a step fails (a bad chunk, ``classes`` missing on the first call),
        the earlier steps that learned from this chunk are put back as they
        were before the call (their attributes are restored from a copy taken
        before their ``partial_fit``; skgd's estimators also leave themselves
        unchanged on error), and the error is raised. This copy costs a copy
        of each learning step's state per call (a ``MaxAbsScaler`` on 2**20
        hashed features: 8 MB).

        Parameters
        ----------
        X : iterable
            A chunk of training data, as the first step takes it.
        y : iterable, default=None
            The chunk's targets.
        **params : dict of str -> object
            Parameters of the steps' ``partial_fit``: ``stepname__param`` goes
            to the step ``stepname`` (as ``Pipeline.fit`` routes its
            parameters when metadata routing is off; the same here whether or
            not it is on), which must be one that learns. A name without
            ``__`` (``classes=``, ``sample_weight=``) goes to the last step:
            ``Pipeline.fit`` refuses such names, but every call of a
            classifier's ``partial_fit`` in a stream passes ``classes``.
            ``sample_weight=w`` and ``minibatchsgdclassifier__sample_weight=w``
            are the same; giving both is an error.

        Returns
        -------
        self : object
            This pipeline, with every step updated by the chunk.

        Raises
        ------
        TypeError
            If an earlier step needs fitting, is not fitted and has no
            ``partial_fit``.
        ValueError
            If a parameter names no step, goes to a step that does not learn,
            is given twice, or ``transform_input`` is set.
        """
        if self.transform_input is not None:
            raise ValueError(
                "Pipeline.partial_fit does not support transform_input; it is only for "
                "fit with metadata routing.")
        # Shallow copy, as Pipeline.fit does, so a list shared with the caller is not
        # the pipeline's; then scikit-learn's checks of the steps.
        self.steps = list(self.steps)
        self._validate_steps()
        routed = self._route_partial_fit_params(params)
        # Every check before any step learns, so a refused call changes nothing.
        kinds = []
        for _, name, step in self._iter(with_final=False, filter_passthrough=False):
            kind = self._partial_fit_kind(name, step)
            if routed[name] and kind != _LEARN:
                raise ValueError(
                    f"Pipeline.partial_fit got parameters for the step {name!r} "
                    f"({sorted(routed[name])}), which does not learn from the chunk "
                    f"(it only transforms it or is skipped).")
            kinds.append(kind)

        saved = []  # (step, its __dict__ before learning) for the rollback
        try:
            Xt = X
            for (step_idx, name, step), kind in zip(
                    self._iter(with_final=False, filter_passthrough=False), kinds,
                    strict=True):
                with _print_elapsed_time("Pipeline", self._log_message(step_idx)):
                    if kind == _SKIP:
                        continue
                    if kind == _LEARN:
                        saved.append((step, copy.deepcopy(step.__dict__)))
                        step.partial_fit(Xt, y, **routed[name])
                    Xt = step.transform(Xt)
            with _print_elapsed_time("Pipeline", self._log_message(len(self.steps) - 1)):
                self._final_estimator.partial_fit(Xt, y, **routed[self.steps[-1][0]])
        except BaseException:
            # In place, not by swapping in the copies: the caller may hold the steps.
            for step, state in reversed(saved):
                step.__dict__.clear()
                step.__dict__.update(state)
            raise
        return self


def make_pipeline(*steps, memory=None, transform_input=None, verbose=False):
    """Build a :class:`Pipeline` (with ``partial_fit``) from estimators.

    scikit-learn's :func:`sklearn.pipeline.make_pipeline`, returning
    :class:`skgd.pipeline.Pipeline`: the steps are named after their
    classes, lowercased (``'hashingvectorizer'``,
    ``'minibatchsgdclassifier'``).

    Parameters
    ----------
    *steps : list of estimators
        The steps, in order; the last one is the estimator.
    memory : str or object with the joblib.Memory interface, default=None
        As for :class:`Pipeline`.
    transform_input : list of str, default=None
        As for :class:`Pipeline`.
    verbose : bool, default=False
        As for :class:`Pipeline`.

    Returns
    -------
    Pipeline
        A :class:`skgd.pipeline.Pipeline`.

    Examples
    --------
    >>> from sklearn.feature_extraction.text import HashingVectorizer
    >>> from skgd import MinibatchSGDClassifier
    >>> from skgd.pipeline import make_pipeline
    >>> make_pipeline(HashingVectorizer(), MinibatchSGDClassifier())
    Pipeline(steps=[('hashingvectorizer', HashingVectorizer()),
                    ('minibatchsgdclassifier', MinibatchSGDClassifier())])
    """
    named = _sk_make_pipeline(*steps, memory=memory, transform_input=transform_input,
                              verbose=verbose)
    return Pipeline(**named.get_params(deep=False))
