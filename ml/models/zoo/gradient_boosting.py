"""Histogram gradient boosting for return and for log value (a hurdle: hurdle.py)."""
from __future__ import annotations

from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from ml.models.zoo.hurdle import HurdleModel


class GradientBoosting(HurdleModel):
    name = "gradient_boosting"
    description = "gradient boosting classifier x regressor (histogram GBM)"
    tree_based = True

    @staticmethod
    def estimators(fast: bool, seed: int) -> tuple:
        kw = dict(max_iter=100 if fast else 400, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=40,
                  l2_regularization=1.0, early_stopping=True, validation_fraction=0.15, n_iter_no_change=20,
                  random_state=seed)
        return HistGradientBoostingClassifier(**kw), HistGradientBoostingRegressor(**kw)
