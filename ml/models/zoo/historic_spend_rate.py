"""The rule of thumb in the zoo, nothing learned: a customer keeps spending at the rate they have so far."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from ml.models.interface import ClvModel, FitContext
from ml.models.preprocess import Preprocessor
from ml.data.windows import Window


class HistoricSpendRate(ClvModel):
    name = "historic_spend_rate"
    description = "heuristic: past spend per day x horizon"
    baseline = True
    servable: ClassVar[bool] = False  # no value quantiles

    @classmethod
    def fit(cls, window: Window, ctx: FitContext) -> "HistoricSpendRate":
        prep = Preprocessor.fit(window.features, window.sequences)
        return cls(prep, {"name": cls.name, "train_cutoff": str(window.cutoff), "horizon_days": ctx.horizon_days})

    def predict_raw(self, features: pd.DataFrame, sequences: np.ndarray) -> pd.DataFrame:
        out = historic_spend_rate(features, int(self.info["horizon_days"]))
        nan = np.full(len(out), np.nan)
        return out.assign(value_p10=nan, value_p50=nan, value_p90=nan)

    @classmethod
    def restore(cls, folder: Path, prep: Preprocessor, info: dict, spec: dict, load) -> "HistoricSpendRate":
        return cls(prep, info)


def historic_spend_rate(features: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """Past spend per day of tenure, extrapolated over the horizon; return chance from the past order rate.

    The rule of thumb a shop uses without a model: "a customer will keep spending at the rate they have so far".
    """
    days = np.maximum(features["tenure_days"].to_numpy(dtype=float, na_value=0.0), 1.0)
    spend = features["total_spend"].to_numpy(dtype=float, na_value=0.0)
    orders = features["n_orders"].to_numpy(dtype=float, na_value=0.0)
    return pd.DataFrame({
        "predicted_value": spend / days * horizon_days,
        "p_return": 1.0 - np.exp(-orders / days * horizon_days),
    })

