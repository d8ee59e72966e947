"""The linear baseline: logistic regression for return, ridge regression on log value (a hurdle: hurdle.py)."""
from __future__ import annotations

from sklearn.linear_model import LogisticRegression, Ridge

from ml.models.zoo.hurdle import HurdleModel


class Linear(HurdleModel):
    name = "linear"
    description = "logistic regression (return) x linear regression (log value)"

    @staticmethod
    def estimators(fast: bool, seed: int) -> tuple:
        return LogisticRegression(C=1.0, max_iter=2000), Ridge(alpha=1.0)
