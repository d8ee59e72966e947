"""One decision tree for return and one on log value (a hurdle: hurdle.py)."""
from __future__ import annotations

from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from ml.models.zoo.hurdle import HurdleModel


class DecisionTree(HurdleModel):
    name = "decision_tree"
    description = "decision tree classifier x regressor"
    tree_based = True

    @staticmethod
    def estimators(fast: bool, seed: int) -> tuple:
        return (DecisionTreeClassifier(max_depth=8, min_samples_leaf=50, random_state=seed),
                DecisionTreeRegressor(max_depth=8, min_samples_leaf=50, random_state=seed))
