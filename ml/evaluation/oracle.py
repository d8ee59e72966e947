"""The simulator's truth as a model: each customer's true expected value and return chance at a cutoff.

Only the built-in shop has it (truth.parquet beside its exports); it bounds every model from above on that data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.windows import Window


def oracle_predictions(truth_path: str | Path, window: Window) -> pd.DataFrame | None:
    """predicted_value and p_return of the oracle for the window's customers; None without a complete truth."""
    path = Path(truth_path)
    if not path.exists():
        return None
    truth = pd.read_parquet(path)
    truth = truth[truth["cutoff_date"].dt.date == window.cutoff].set_index("customer_id").reindex(window.customer_ids)
    if truth["expected_value"].isna().any():
        return None
    if "p_return" in truth:  # the simulator's exact P(at least one completed order)
        p_return = truth["p_return"].to_numpy(float)
    else:  # older truth files: E[orders] = (1 - exp(-p L)) / p for an alive customer gives the intensity L
        p, orders = truth["dropout_p"].to_numpy(float), truth["expected_orders"].to_numpy(float)
        intensity = -np.log1p(-np.clip(p * orders, 0, 1 - 1e-12)) / p
        p_return = truth["alive"].to_numpy(bool) * -np.expm1(-intensity)
    return pd.DataFrame({"predicted_value": truth["expected_value"].to_numpy(float), "p_return": p_return})
