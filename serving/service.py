"""The prediction API: BentoML service over the latest `clv_model` in the model store.

POST /predict {"customer_ids": [...]} -> per customer: expected value over the horizon, return probability,
value interval, lifecycle stage and the model version. /livez, /readyz and /metrics come with BentoML.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import bentoml
from bentoml.exceptions import InvalidArgument, NotFound

from serving import store

MAX_IDS = 10_000


def _rows(served: store.Served, customer_ids: list[str]) -> list[dict]:
    if not customer_ids:
        raise InvalidArgument("customer_ids must hold at least one customer id")
    if len(customer_ids) > MAX_IDS:
        raise InvalidArgument(f"at most {MAX_IDS} customer ids per request, got {len(customer_ids)}")
    snap = served.snapshot
    index = pd.Index(snap.customer_ids)
    pos = index.get_indexer(customer_ids)
    unknown = [c for c, p in zip(customer_ids, pos) if p < 0]
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise NotFound(f"unknown customer id(s): {shown} ({len(unknown)} of {len(customer_ids)} not in the scored snapshot)")
    pred = served.model.predict(snap.features.iloc[pos].reset_index(drop=True), snap.sequences[pos])
    pred.insert(0, "customer_id", customer_ids)
    pred["lifecycle_stage"] = snap.lifecycle.to_numpy()[pos]
    pred["model_version"] = served.version
    return pred.replace({np.nan: None}).to_dict(orient="records")


@bentoml.service(name="clv_service", traffic={"timeout": 30})
class ClvService:
    def __init__(self) -> None:
        self.served = store.load()

    @bentoml.api
    def predict(self, customer_ids: list[str]) -> list[dict]:
        """Predictions for one or more known customers."""
        return _rows(self.served, customer_ids)
