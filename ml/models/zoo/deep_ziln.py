"""The deep challenger: the network with a zero-inflated lognormal head (Google's ZILN): return probability,
expected value and quantiles. Its hyperparameters are searched within the budget (ml/models/search.py) unless a
chosen recipe is retrained."""
from __future__ import annotations

import pandas as pd
import torch

from ml.data.windows import Window
from ml.models import ziln
from ml.models.interface import FitContext
from ml.models.search import search
from ml.models.zoo.deep import DeepModel


class DeepZiln(DeepModel):
    name = "deep_ziln"
    description = "MLP + CNN/GRU sequence encoder, zero-inflated lognormal head"
    head = "ziln"

    @classmethod
    def fit(cls, window: Window, ctx: FitContext) -> "DeepZiln":
        if ctx.recipe is not None:
            return cls.train(window, ctx.recipe, split=ctx.split)
        budget = 0.0 if ctx.training.fast else ctx.training.search_budget_seconds
        best, ctx.search_trials[:] = search(window, ctx.base, budget, ctx.split, progress=ctx.say)
        return cls.from_trained(best)

    def outputs(self, logits: torch.Tensor) -> pd.DataFrame:
        cap = self.net.cfg.max_log_value
        return pd.DataFrame({
            "predicted_value": ziln.expected_value(logits, cap).numpy(),
            "p_return": ziln.return_probability(logits).numpy(),
            "value_p10": ziln.quantile(logits, 0.1, cap).numpy(),
            "value_p50": ziln.quantile(logits, 0.5, cap).numpy(),
            "value_p90": ziln.quantile(logits, 0.9, cap).numpy(),
        })
