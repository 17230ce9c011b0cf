"""skgd: fast minibatch stochastic gradient descent for scikit-learn."""

from ._classifier import MinibatchSGDClassifier
from ._parallel import DataParallel
from ._regressor import MinibatchSGDRegressor
from .exceptions import StepCapWarning
from .gradcheck import check_gradient

__all__ = ["DataParallel", "MinibatchSGDClassifier", "MinibatchSGDRegressor",
           "StepCapWarning", "check_gradient"]
# The one place the version is written: pyproject.toml and the docs read it.
__version__ = "0.3.0"
