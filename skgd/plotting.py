"""Plots of training, following scikit-learn's Display API (matplotlib needed)."""

import numpy as np
from sklearn.utils.validation import check_is_fitted

__all__ = ["LossCurveDisplay"]


def _pyplot(caller):
    """``matplotlib.pyplot``, or an ImportError naming skgd's extra that
    installs it (as scikit-learn's displays name matplotlib; a bare
    ModuleNotFoundError would not say how to get it)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f'{caller} requires matplotlib. You can install it with pip install "skgd[plot]" '
            "(or pip install matplotlib)."
        ) from exc
    return plt


class LossCurveDisplay:
    """The training objective per epoch, and validation scores if recorded.

    Build it with :meth:`from_estimator`; ``plot`` draws it. Requires
    matplotlib (``pip install "skgd[plot]"``); without it, ``plot`` raises
    an ImportError that says so.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        Mean training objective per epoch (the estimator's ``loss_curve_``).
    validation_scores : array-like of shape (n_epochs,) or None
        Validation score per epoch (``validation_scores_``), drawn on a
        second axis.
    estimator_name : str or None
        Used in the legend.

    Attributes
    ----------
    ax_ : matplotlib Axes
        The axes of the objective.
    ax_validation_ : matplotlib Axes or None
        The second axes of the validation scores.
    figure_ : matplotlib Figure
    line_ : matplotlib Line2D

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_iris
    >>> from skgd import MinibatchSGDClassifier
    >>> from skgd.plotting import LossCurveDisplay
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MinibatchSGDClassifier(max_iter=20, tol=None, random_state=0).fit(X, y)
    >>> display = LossCurveDisplay.from_estimator(clf)
    >>> display.ax_.get_xlabel()
    'epoch'
    """

    def __init__(self, *, loss_curve, validation_scores=None, estimator_name=None):
        self.loss_curve = loss_curve
        self.validation_scores = validation_scores
        self.estimator_name = estimator_name

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, name=None, **kwargs):
        """Plot a fitted skgd estimator's ``loss_curve_``.

        Parameters
        ----------
        estimator : MinibatchSGDClassifier or MinibatchSGDRegressor
            Fitted.
        ax : matplotlib Axes, default=None
            Where to draw; a new figure when None.
        name : str, default=None
            Legend label; the estimator's class name when None.
        **kwargs : dict
            Passed to ``Axes.plot`` for the objective.

        Returns
        -------
        display : LossCurveDisplay
        """
        check_is_fitted(estimator, "loss_curve_")
        display = cls(
            loss_curve=estimator.loss_curve_,
            validation_scores=getattr(estimator, "validation_scores_", None),
            estimator_name=name or type(estimator).__name__,
        )
        return display.plot(ax=ax, **kwargs)

    def plot(self, ax=None, **kwargs):
        """Draw the curve(s).

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        **kwargs : dict
            Passed to ``Axes.plot``.

        Returns
        -------
        self : LossCurveDisplay
        """
        plt = _pyplot(type(self).__name__)
        from matplotlib.ticker import MaxNLocator

        if ax is None:
            _, ax = plt.subplots()
        epochs = np.arange(1, len(self.loss_curve) + 1)
        kwargs.setdefault("label", self.estimator_name)
        (self.line_,) = ax.plot(epochs, self.loss_curve, marker="o", markersize=3, **kwargs)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        ax.set_ylabel("mean training objective (loss + penalty)")
        self.ax_validation_ = None
        if self.validation_scores is not None:
            self.ax_validation_ = ax.twinx()
            self.ax_validation_.plot(epochs, self.validation_scores, color="tab:orange",
                                     linestyle="--", label="validation score")
            self.ax_validation_.set_ylabel("validation score")
        if kwargs.get("label"):
            ax.legend(loc="upper right")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self
