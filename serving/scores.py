"""Every snapshot customer's answer, computed once per model version and served as ready JSON.

The answers are the model's in-process output on the whole snapshot (`ClvModel.predict`, as the customer_scores
asset computes it) and `ml.evaluation.explain.explain` reasons; /predict only looks them up and joins their JSON bytes, so its
cost does not depend on the network and 1,000 ids cost about as much as one.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml.evaluation.explain import explain
from ml.models.interface import PREDICTION_COLUMNS, ClvModel
from ml.data.windows import Window

TOP_REASONS = 3
logger = logging.getLogger("bentoml.clv_service")
SCORES_FILE = "scores.parquet"


def score(model: ClvModel, snapshot: Window, top_k: int = TOP_REASONS) -> pd.DataFrame:
    """customer_id, the prediction columns, lifecycle_stage and reasons (a JSON list) for every snapshot row."""
    pred = model.predict(snapshot.features, snapshot.sequences, snapshot.events)
    reasons = reasons_of(model, snapshot.features, snapshot.sequences, top_k, snapshot.events)
    return pd.concat([
        pd.DataFrame({"customer_id": snapshot.customer_ids.astype(str)}), pred,
        pd.DataFrame({"lifecycle_stage": snapshot.lifecycle.to_numpy(dtype=object),
                      "reasons": [json.dumps(r) for r in reasons]}),
    ], axis=1)


def reasons_of(model: ClvModel, features: pd.DataFrame, sequences, top_k: int = TOP_REASONS,
               events=None) -> list[list[dict] | None]:
    """`ml.evaluation.explain.explain` as plain dicts; None per row (and a logged warning) when the model cannot be explained,
    so predictions are still served."""
    if not len(features):
        return []
    try:
        return [[r.to_dict() for r in rs] for rs in explain(model, features, sequences, top_k=top_k, events=events)]
    except Exception as exc:  # a model kind or file format explain does not handle
        logger.warning("no reasons for %s model: %s: %s", type(model).__name__, type(exc).__name__, exc)
        return [None] * len(features)


def save(scores: pd.DataFrame, folder: str | Path) -> None:
    scores.to_parquet(Path(folder) / SCORES_FILE, index=False)


def read(folder: str | Path) -> pd.DataFrame | None:
    path = Path(folder) / SCORES_FILE
    return pd.read_parquet(path) if path.exists() else None


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def row(customer_id, values: dict, lifecycle_stage, version: str, reasons: list[dict] | None) -> dict:
    """One answer, in the order and types of `serving.schemas.Prediction`."""
    return {
        "customer_id": customer_id,
        **{c: _number(values[c]) for c in PREDICTION_COLUMNS},
        "lifecycle_stage": None if lifecycle_stage is None or pd.isna(lifecycle_stage) else str(lifecycle_stage),
        "model_version": version,
        "reasons": reasons,
    }


def _json(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True)
class Answers:
    """customer id -> its JSON answer, with and without reasons."""

    version: str
    with_reasons: dict[str, bytes]
    without_reasons: dict[str, bytes]

    @classmethod
    def build(cls, scores: pd.DataFrame, version: str) -> "Answers":
        with_r, without_r = {}, {}
        values = scores[PREDICTION_COLUMNS].to_dict(orient="records")
        columns = scores["customer_id"], values, scores["lifecycle_stage"], scores["reasons"]
        for cid, vals, stage, reasons in zip(*columns):
            with_r[cid] = _json(row(cid, vals, stage, version, json.loads(reasons)))
            without_r[cid] = _json(row(cid, vals, stage, version, None))
        return cls(version, with_r, without_r)

    def __len__(self) -> int:
        return len(self.with_reasons)

    def unknown(self, customer_ids: list[str]) -> list[str]:
        table = self.with_reasons
        return [c for c in customer_ids if c not in table]

    def json(self, customer_ids: list[str], reasons: bool) -> bytes:
        """The JSON array of answers in request order; every id must be known (see `unknown`)."""
        table = self.with_reasons if reasons else self.without_reasons
        return b"[" + b",".join([table[c] for c in customer_ids]) + b"]"

