"""Random forests for return and for log value (a hurdle: hurdle.py)."""
from __future__ import annotations

from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from ml.models.zoo.hurdle import HurdleModel


BOOTSTRAP_ROWS = 50_000  # rows a tree samples at most: past them a forest's fit time keeps growing, its ranking barely moves


class RandomForest(HurdleModel):
    name = "random_forest"
    description = "random forest classifier x regressor"
    tree_based = True

    @staticmethod
    def estimators(fast: bool, seed: int) -> tuple:
        kw = dict(n_estimators=40 if fast else 200, min_samples_leaf=20, max_features=0.5, max_samples=0.5,
                  n_jobs=-1, random_state=seed)
        return RandomForestClassifier(**kw), RandomForestRegressor(**kw)

    @staticmethod
    def sized(estimator, n_rows: int):
        return estimator.set_params(max_samples=min(0.5, BOOTSTRAP_ROWS / max(n_rows, 1)))
