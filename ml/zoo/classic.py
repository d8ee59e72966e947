"""The classic machine-learning models (scikit-learn), each as a two-part (hurdle) model of one family:
a classifier for "will return" and a regressor for log(value) of those who return.

Together they are a zero-inflated lognormal like the deep head: p = classifier probability, mu = regressor output,
sigma = spread of the regressor's residuals, so E[value] = p x exp(mu + sigma^2 / 2) and the quantiles follow.
Inputs: the static features as the network sees them (signed log1p, standardised, missing flags) + one-hot context,
and what BG/NBD + Gamma-Gamma say of each customer (P(alive), expected purchases and spend: ml/zoo/btyd.py), from
a BTYD fitted on the same training window and kept with the model.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier,
                              RandomForestRegressor)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.svm import LinearSVC, LinearSVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from ml import ziln
from ml.model import ClvModel
from ml.preprocess import Preprocessor
from ml.windows import Window
from ml.zoo.btyd import BtydModel, btyd_from_info, with_btyd_features

FAMILIES = ("linear", "linear_svm", "decision_tree", "random_forest", "gradient_boosting")
TREES = ("decision_tree", "random_forest", "gradient_boosting")


def estimators(family: str, fast: bool, seed: int):
    """(classifier, regressor) of one family. `fast`: smaller ensembles for tests."""
    trees = 40 if fast else 200
    if family == "linear":
        return LogisticRegression(C=1.0, max_iter=2000), Ridge(alpha=1.0)
    if family == "linear_svm":
        svc = LinearSVC(C=0.1, dual=False, max_iter=5000)
        return (CalibratedClassifierCV(svc, method="sigmoid", cv=3),
                LinearSVR(C=0.1, epsilon=0.0, loss="squared_epsilon_insensitive", dual=False, max_iter=5000))
    if family == "decision_tree":
        return (DecisionTreeClassifier(max_depth=8, min_samples_leaf=50, random_state=seed),
                DecisionTreeRegressor(max_depth=8, min_samples_leaf=50, random_state=seed))
    if family == "random_forest":
        kw = dict(n_estimators=trees, min_samples_leaf=20, max_features=0.5, max_samples=0.5, n_jobs=-1,
                  random_state=seed)
        return RandomForestClassifier(**kw), RandomForestRegressor(**kw)
    if family == "gradient_boosting":
        kw = dict(max_iter=100 if fast else 400, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=40,
                  l2_regularization=1.0, early_stopping=True, validation_fraction=0.15, n_iter_no_change=20,
                  random_state=seed)
        return HistGradientBoostingClassifier(**kw), HistGradientBoostingRegressor(**kw)
    raise ValueError(f"unknown model family {family!r} (one of {', '.join(FAMILIES)})")


def design_matrix(prep: Preprocessor, features: pd.DataFrame, sequences: np.ndarray) -> np.ndarray:
    """Static features as the network sees them, with the context columns one-hot."""
    numeric, cats, _ = prep.transform(features, sequences)
    onehots = [np.eye(card, dtype=np.float32)[cats[:, j]] for j, card in enumerate(prep.cardinalities)]
    return np.concatenate([numeric, *onehots], axis=1)


class HurdleModel(ClvModel):
    kind = "hurdle"

    def __init__(self, prep: Preprocessor, classifier, regressor, sigma: float, info: dict | None = None):
        super().__init__(prep, info)
        self.classifier, self.regressor, self.sigma = classifier, regressor, float(sigma)
        self.btyd = btyd_from_info(self.info.get("btyd"))  # BG/NBD + Gamma-Gamma outputs as features

    @classmethod
    def fit(cls, name: str, family: str, window: Window, train_idx: np.ndarray, val_idx: np.ndarray,
            fast: bool = False, seed: int = 0, btyd: BtydModel | None = None) -> "HurdleModel":
        features = with_btyd_features(btyd, window.features)
        prep = Preprocessor.fit(features.iloc[train_idx], window.sequences[train_idx])
        x = design_matrix(prep, features, window.sequences)
        y = window.y
        classifier, regressor = estimators(family, fast, seed)
        returned = y[train_idx] > 0
        classifier.fit(x[train_idx], returned)
        pos = train_idx[returned]
        regressor.fit(x[pos], np.log(y[pos]))
        for fitted in (classifier, regressor):  # fit in parallel; predict serially (small requests, no thread pool)
            if getattr(fitted, "n_jobs", None) is not None:
                fitted.n_jobs = 1
        # residual spread on returners the regressor did not see (the validation rows), else on its own
        check = val_idx[y[val_idx] > 0]
        check = check if len(check) >= 20 else pos
        sigma = float(np.clip(np.std(np.log(y[check]) - regressor.predict(x[check])), ziln.SIGMA_MIN, ziln.SIGMA_MAX))
        info = {"name": name, "family": family, "train_cutoff": str(window.cutoff), "n_train": int(len(train_idx)),
                "sigma": sigma, "max_log_value": float(np.log(max(float(y.max()), 1.0) * 5.0)),
                "btyd": {k: btyd.info[k] for k in ("bg_nbd", "gamma_gamma", "horizon_days", "sigma")} if btyd else None}
        return cls(prep, classifier, regressor, sigma, info)

    def inputs(self, features: pd.DataFrame) -> pd.DataFrame:
        return with_btyd_features(self.btyd, features)

    def predict_raw(self, features: pd.DataFrame, sequences: np.ndarray) -> pd.DataFrame:
        x = design_matrix(self.prep, self.inputs(features), sequences)
        p = self.classifier.predict_proba(x)[:, 1] if len(x) else np.zeros(0)
        mu = self.regressor.predict(x) if len(x) else np.zeros(0)
        cap = float(self.info.get("max_log_value", ziln.NO_CAP))
        mu = np.minimum(mu, cap - 0.5 * self.sigma**2)
        q10, q50, q90 = ziln.mixture_quantiles(p, mu, self.sigma)
        return pd.DataFrame({"predicted_value": p * np.exp(mu + 0.5 * self.sigma**2), "p_return": p,
                             "value_p10": q10, "value_p50": q50, "value_p90": q90})

    def spec(self) -> dict:
        return {"sigma": self.sigma}

    def save_state(self, folder: Path) -> None:
        with (folder / "estimators.pkl").open("wb") as f:
            pickle.dump({"classifier": self.classifier, "regressor": self.regressor}, f)

    @classmethod
    def restore(cls, folder: Path, prep: Preprocessor, info: dict, spec: dict) -> "HurdleModel":
        with (folder / "estimators.pkl").open("rb") as f:
            parts = pickle.load(f)
        return cls(prep, parts["classifier"], parts["regressor"], spec["sigma"], info)
