"""Linear SVMs: a Platt-scaled linear SVC for return, a linear SVR on log value (a hurdle: hurdle.py)."""
from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import LinearSVC, LinearSVR

from ml.models.zoo.hurdle import HurdleModel


class LinearSvm(HurdleModel):
    name = "linear_svm"
    description = "linear SVM (return, Platt-scaled) x linear SVR (log value)"

    @staticmethod
    def estimators(fast: bool, seed: int) -> tuple:
        svc = LinearSVC(C=0.1, dual=False, max_iter=5000)
        return (CalibratedClassifierCV(svc, method="sigmoid", cv=3),
                LinearSVR(C=0.1, epsilon=0.0, loss="squared_epsilon_insensitive", dual=False, max_iter=5000))
