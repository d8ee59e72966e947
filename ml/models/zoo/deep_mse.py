"""The same network trained with plain MSE on log1p(value), as the usual case studies do: a value only (no return
probability or quantiles), so it is compared but not served. It reuses the ZILN member's recipe when that trained."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from ml.data.windows import Window
from ml.models.interface import FitContext
from ml.models.zoo.deep import DeepModel


class DeepMse(DeepModel):
    name = "deep_mse"
    description = "the same network trained with plain MSE on log1p(value)"
    head = "mse"
    servable: ClassVar[bool] = False

    @classmethod
    def fit(cls, window: Window, ctx: FitContext) -> "DeepMse":
        ziln = ctx.fitted.get("deep_ziln")
        return cls.train(window, ziln.recipe() if ziln is not None else ctx.base, split=ctx.split)

    def outputs(self, logits: torch.Tensor) -> pd.DataFrame:
        value = torch.expm1(logits[:, 0].clamp(0, self.net.cfg.max_log_value)).numpy()  # trained on log1p(value)
        nan = np.full(len(value), np.nan)
        return pd.DataFrame({"predicted_value": value, "p_return": nan, "value_p10": nan, "value_p50": nan,
                             "value_p90": nan})
