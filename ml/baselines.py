"""Classic baselines that a CLV model must beat on the same rows."""
from __future__ import annotations

import numpy as np
import pandas as pd


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
