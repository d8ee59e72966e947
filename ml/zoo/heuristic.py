"""The rule of thumb in the zoo: historic spend rate (ml/baselines.py), nothing learned."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from ml.baselines import historic_spend_rate
from ml.model import ClvModel
from ml.preprocess import Preprocessor
from ml.windows import Window


class HeuristicModel(ClvModel):
    kind = "heuristic"
    servable: ClassVar[bool] = False  # a baseline: no value quantiles

    @classmethod
    def fit(cls, name: str, window: Window, horizon_days: int) -> "HeuristicModel":
        prep = Preprocessor.fit(window.features, window.sequences)
        return cls(prep, {"name": name, "train_cutoff": str(window.cutoff), "horizon_days": horizon_days})

    def predict_raw(self, features: pd.DataFrame, sequences: np.ndarray) -> pd.DataFrame:
        out = historic_spend_rate(features, int(self.info["horizon_days"]))
        nan = np.full(len(out), np.nan)
        return out.assign(value_p10=nan, value_p50=nan, value_p90=nan)

    @classmethod
    def restore(cls, folder: Path, prep: Preprocessor, info: dict, spec: dict) -> "HeuristicModel":
        return cls(prep, info)
