"""The deep network with a transformer over each customer's recent event stream (dbt customer_events: orders and
behaviour events, newest first) in place of the CNN/GRU over weekly activity, and the ZILN head: it sees the order
of events and the gaps between them, which weekly sums blur. Trained on the zoo's starting configuration, or the
chosen recipe (no search of its own: the budget is the ZILN member's)."""
from __future__ import annotations

from ml.data.windows import Window
from ml.models.interface import FitContext
from ml.models.zoo.deep_ziln import DeepZiln


class DeepTransformer(DeepZiln):
    name = "deep_transformer"
    description = "MLP + transformer encoder over the recent event stream, zero-inflated lognormal head"
    encoder = "transformer"
    # on the built-in shop it ties deep_ziln's ranking at ~13x the training time (benchmarks/event_encoder.py): a
    # shop whose order of events matters names it in training.models
    by_default = False

    @classmethod
    def fit(cls, window: Window, ctx: FitContext) -> "DeepTransformer":
        return cls.train(window, ctx.recipe or ctx.base, split=ctx.split)
