"""Lifecycle stage of feature rows the warehouse has not seen: the rules of the dbt model customer_lifecycle.sql.

The warehouse stays the one definition: the thresholds are read from dbt_project.yml, and a test checks that these
rules give dbt's stage for every customer of a scored snapshot. A comparison with a missing value is false, as a
comparison with NULL is not true in SQL.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import yaml

from ml import settings

THRESHOLDS = ("new_within_days", "at_risk_after_days", "churn_after_days", "loyal_min_orders")


@lru_cache(maxsize=1)
def thresholds() -> dict[str, int]:
    dbt_vars = yaml.safe_load((settings.DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    return {name: int(dbt_vars[name]) for name in THRESHOLDS}


def stages(features: pd.DataFrame) -> np.ndarray:
    """The lifecycle stage of each row; the first matching rule wins, as in the SQL `case`."""
    t = thresholds()

    def col(name: str) -> np.ndarray:
        return features[name].to_numpy(dtype=float, na_value=np.nan)

    n_orders, recency = col("n_orders"), col("recency_days")
    with np.errstate(invalid="ignore"):
        rules = [
            (n_orders == 0, "potential"),
            (recency > t["churn_after_days"], "churned"),
            ((recency > t["at_risk_after_days"])
             | ((n_orders >= 2) & (recency > 2 * col("mean_interpurchase_days"))), "at_risk"),
            (col("days_since_first_order") <= t["new_within_days"], "new"),
            (n_orders >= t["loyal_min_orders"], "loyal"),
        ]
    return np.select([rule for rule, _ in rules], [stage for _, stage in rules], default="active").astype(object)
