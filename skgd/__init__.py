"""skgd: fast minibatch stochastic gradient descent for scikit-learn."""

from ._classifier import MinibatchSGDClassifier
from ._regressor import MinibatchSGDRegressor

__all__ = ["MinibatchSGDClassifier", "MinibatchSGDRegressor"]
__version__ = "0.1.0"
