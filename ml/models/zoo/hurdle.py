"""What the zoo's classic machine-learning members share (not a member itself): a two-part (hurdle) model of
one scikit-learn family, a classifier for "will return" and a regressor for log(value) of those who return. Each
family is a member of its own (linear.py, linear_svm.py, decision_tree.py, random_forest.py, gradient_boosting.py)
that only says which estimators it is made of.

Together they are a zero-inflated lognormal like the deep head: p = classifier probability, mu = regressor output,
sigma = spread of the regressor's residuals, so E[value] = p x exp(mu + sigma^2 / 2) and the quantiles follow.
Inputs: the static features as the network sees them (signed log1p, standardised, missing flags) + one-hot context,
and what BG/NBD + Gamma-Gamma say of each customer (P(alive), expected purchases and spend: ml/models/zoo/btyd.py),
from a BTYD fitted on the same training window and kept with the model.
"""
from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.windows import Window
from ml.models import ziln
from ml.models.interface import ClvModel, FitContext
from ml.models.preprocess import Preprocessor
from ml.models.threads import cores
from ml.models.zoo.btyd import btyd_from_info, with_btyd_features

def design_matrix(prep: Preprocessor, features: pd.DataFrame, sequences: np.ndarray) -> np.ndarray:
    """Static features as the network sees them, with the context columns one-hot."""
    numeric, cats = prep.transform_static(features)
    onehots = [np.eye(card, dtype=np.float32)[cats[:, j]] for j, card in enumerate(prep.cardinalities)]
    return np.concatenate([numeric, *onehots], axis=1)


class HurdleModel(ClvModel):

    def __init__(self, prep: Preprocessor, classifier, regressor, sigma: float, info: dict | None = None):
        super().__init__(prep, info)
        self.classifier, self.regressor, self.sigma = classifier, regressor, float(sigma)
        self.btyd = btyd_from_info(self.info.get("btyd"))  # BG/NBD + Gamma-Gamma outputs as features

    @staticmethod
    def estimators(fast: bool, seed: int) -> tuple:
        """(classifier, regressor) of the member's family. `fast`: smaller ensembles for tests."""
        raise NotImplementedError

    @staticmethod
    def sized(estimator, n_rows: int):
        """The estimator for a fit on `n_rows` (a family whose cost grows with the rows may cap what it samples)."""
        return estimator

    @classmethod
    def fit(cls, window: Window, ctx: FitContext) -> "HurdleModel":
        train_idx, val_idx = ctx.split
        btyd = ctx.btyd_features()
        features = with_btyd_features(btyd, window.features)
        prep = Preprocessor.fit(features.iloc[train_idx], window.sequences[train_idx])
        x = design_matrix(prep, features, window.sequences)
        y = window.y
        classifier, regressor = cls.estimators(ctx.training.fast, ctx.training.seed)
        returned = y[train_idx] > 0
        cls.sized(classifier, len(train_idx)).fit(x[train_idx], returned)
        pos = train_idx[returned]
        cls.sized(regressor, len(pos)).fit(x[pos], np.log(y[pos]))
        for fitted in (classifier, regressor):  # fit in parallel; predict serially (small requests, no thread pool)
            if getattr(fitted, "n_jobs", None) is not None:
                fitted.n_jobs = 1
        # residual spread on returners the regressor did not see (the validation rows), else on its own
        check = val_idx[y[val_idx] > 0]
        check = check if len(check) >= 20 else pos
        sigma = float(np.clip(np.std(np.log(y[check]) - regressor.predict(x[check])), ziln.SIGMA_MIN, ziln.SIGMA_MAX))
        info = {"name": cls.name, "family": cls.name, "train_cutoff": str(window.cutoff), "n_train": int(len(train_idx)),
                "sigma": sigma, "max_log_value": float(np.log(max(float(y.max()), 1.0) * 5.0)),
                "btyd": {k: btyd.info[k] for k in ("bg_nbd", "gamma_gamma", "horizon_days", "sigma")} if btyd else None}
        return cls(prep, classifier, regressor, sigma, info)

    def inputs(self, features: pd.DataFrame) -> pd.DataFrame:
        return with_btyd_features(self.btyd, features)

    def predict_raw(self, features: pd.DataFrame, sequences: np.ndarray) -> pd.DataFrame:
        x = design_matrix(self.prep, self.inputs(features), sequences)
        p = _predict(self.classifier.predict_proba, x, self.classifier)[:, 1] if len(x) else np.zeros(0)
        mu = _predict(self.regressor.predict, x, self.regressor) if len(x) else np.zeros(0)
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
    def restore(cls, folder: Path, prep: Preprocessor, info: dict, spec: dict, load) -> "HurdleModel":
        with (folder / "estimators.pkl").open("rb") as f:
            parts = pickle.load(f)
        return cls(prep, parts["classifier"], parts["regressor"], spec["sigma"], info)


PARALLEL_ROWS = 50_000  # a batch this large (a window judged or scored) predicts on every core


def _predict(method, x: np.ndarray, estimator) -> np.ndarray:
    """`method(x)` (an estimator's predict or predict_proba). A large batch of an estimator that has a thread pool
    (a forest) runs on every core, its rows split across threads: a tree's pass releases the GIL, and each row's
    prediction is the same sum over the same trees as serially. A small request, such as serving sends, runs
    serially. The fitted estimator is never changed (fit leaves it at n_jobs=1), so concurrent calls stay safe."""
    n = cores()
    if len(x) < PARALLEL_ROWS or n < 2 or getattr(estimator, "n_jobs", None) is None:
        return method(x)
    with ThreadPoolExecutor(n) as pool:
        return np.concatenate(list(pool.map(method, np.array_split(x, n))))
