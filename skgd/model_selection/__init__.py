"""Hyper-parameter searches that share work across candidates.

Drop-in replacements for scikit-learn's ``GridSearchCV`` and
``RandomizedSearchCV``: the same parameters, attributes and results, faster
for skgd estimators and Pipelines ending in one.
"""

from ._search import GridSearchCV, RandomizedSearchCV

__all__ = ["GridSearchCV", "RandomizedSearchCV"]
