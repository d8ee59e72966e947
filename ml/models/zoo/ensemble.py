"""Stacking on the validation fold: the members' predictions (trained on the other rows) become the inputs of a
small two-part model fitted on the validation rows only.

Stacker inputs per member: log1p(expected value) and logit(return probability). The BTYD member brings what the
others lack: a model-based P(alive) and purchase rate from the customer's recency and frequency. Like the
classic models, the stacker is a hurdle (logistic regression for return, ridge on log value of returners,
lognormal residual spread), so it gives a return probability, an expected value and quantiles.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge

from ml.models import ziln
from ml.models.interface import ClvModel, FitContext, raw_predictions
from ml.models.preprocess import Preprocessor
from ml.data.windows import Window

class StackedEnsemble(ClvModel):
    name = "ensemble"
    needs = ("btyd", "gradient_boosting", "random_forest", "deep_ziln")
    description = "stacking of " + ", ".join(needs) + " on the validation fold"
    reads_events = True  # for the members that do

    def __init__(self, prep: Preprocessor, members: dict[str, ClvModel], parts: dict, info: dict | None = None):
        super().__init__(prep, info)
        self.members, self.parts = members, parts

    def stack_inputs(self, features: pd.DataFrame, sequences: np.ndarray, events=None) -> np.ndarray:
        """Standardised stacker inputs from the members' raw outputs (the stacker learns their scale itself)."""
        preds = {m: raw_predictions(model, features, sequences, events) for m, model in self.members.items()}
        return (_columns(preds, self.parts["inputs"]) - self.parts["mean"]) / self.parts["std"]

    @classmethod
    def fit(cls, window: Window, ctx: FitContext) -> "StackedEnsemble":
        """Fit the stacker on the validation rows, which the members were not trained on."""
        members = {m: ctx.fitted[m] for m in cls.needs if m in ctx.fitted}
        if len(members) < 2:
            raise ValueError(f"needs at least two trained members, has {', '.join(members) or 'none'}")
        val_idx = ctx.split[1]
        val = window.features.iloc[val_idx].reset_index(drop=True)
        preds = {m: raw_predictions(model, val, window.sequences[val_idx], window.events[val_idx])
                 for m, model in members.items()}
        inputs = [f"{m}:value" for m in members] + [f"{m}:p_return" for m in members
                                                    if not preds[m]["p_return"].isna().any()]
        z = _columns(preds, inputs)
        mean, std = z.mean(axis=0), np.where(z.std(axis=0) > 1e-9, z.std(axis=0), 1.0)
        z = (z - mean) / std
        y = window.y[val_idx]
        returned = y > 0
        if returned.sum() < 10 or (~returned).sum() < 10:
            raise ValueError(f"the validation fold has too few returning and non-returning customers to stack "
                             f"({int(returned.sum())} / {int((~returned).sum())})")
        classifier = LogisticRegression(C=1.0, max_iter=2000).fit(z, returned)
        regressor = Ridge(alpha=1.0).fit(z[returned], np.log(y[returned]))
        residual = np.log(y[returned]) - regressor.predict(z[returned])
        sigma = float(np.clip(residual.std(), ziln.SIGMA_MIN, ziln.SIGMA_MAX))
        parts = {"inputs": inputs, "mean": mean, "std": std, "classifier": classifier, "regressor": regressor,
                 "sigma": sigma}
        info = {"name": cls.name, "members": list(members), "inputs": inputs, "train_cutoff": str(window.cutoff),
                "n_stack": int(len(val_idx)), "sigma": sigma,
                "max_log_value": float(np.log(max(float(window.y.max()), 1.0) * 5.0)),
                "return_weights": dict(zip(inputs, classifier.coef_[0].round(4).tolist())),
                "value_weights": dict(zip(inputs, regressor.coef_.round(4).tolist()))}
        prep = next(iter(members.values())).prep
        return cls(prep, members, parts, info)

    def predict_raw(self, features: pd.DataFrame, sequences: np.ndarray, events=None) -> pd.DataFrame:
        z = self.stack_inputs(features, sequences, events)
        sigma = self.parts["sigma"]
        p = self.parts["classifier"].predict_proba(z)[:, 1] if len(z) else np.zeros(0)
        mu = self.parts["regressor"].predict(z) if len(z) else np.zeros(0)
        mu = np.minimum(mu, float(self.info["max_log_value"]) - 0.5 * sigma**2)
        q10, q50, q90 = ziln.mixture_quantiles(p, mu, sigma)
        return pd.DataFrame({"predicted_value": p * np.exp(mu + 0.5 * sigma**2), "p_return": p,
                             "value_p10": q10, "value_p50": q50, "value_p90": q90})

    def save_state(self, folder: Path) -> None:
        for name, member in self.members.items():
            member.save(folder / "members" / name)
        with (folder / "stacker.pkl").open("wb") as f:
            pickle.dump(self.parts, f)

    def recipe(self):
        """The deep member's recipe: retraining the ensemble retrains its network the same way."""
        return next((m.recipe() for m in self.members.values() if m.recipe() is not None), None)

    @classmethod
    def restore(cls, folder: Path, prep: Preprocessor, info: dict, spec: dict, load) -> "StackedEnsemble":
        members = {name: load(folder / "members" / name) for name in info["members"]}
        with (folder / "stacker.pkl").open("rb") as f:
            parts = pickle.load(f)
        return cls(prep, members, parts, info)


def _columns(preds: dict[str, pd.DataFrame], inputs: list[str]) -> np.ndarray:
    """"member:value" -> log1p(expected value); "member:p_return" -> logit(return probability)."""
    cols = []
    for name in inputs:
        member, output = name.rsplit(":", 1)
        if output == "value":
            cols.append(np.log1p(np.maximum(preds[member]["predicted_value"].to_numpy(dtype=float), 0)))
        else:
            p = np.clip(preds[member]["p_return"].to_numpy(dtype=float), 1e-4, 1 - 1e-4)
            cols.append(np.log(p / (1 - p)))
    n = len(next(iter(preds.values()))) if preds else 0
    return np.column_stack(cols) if cols else np.zeros((n, 0))
