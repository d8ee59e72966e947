"""The same network trained with plain MSE on log1p(value), as the usual case studies do: a value only (no return
probability or quantiles), so it is compared but not served. It reuses the ZILN member's recipe when that trained."""
from __future__ import annotations

from typing import ClassVar

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
