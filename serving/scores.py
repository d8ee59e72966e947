"""Every snapshot customer's answer, computed once per model version and served as ready JSON.

The answers are the customer_scores asset's computation on the whole snapshot (`ml.pipeline.score_frame`:
`ClvModel.predict` and `ml.evaluation.explain.explain` reasons), taken from that asset when it scored the same
model on the same snapshot; /predict only looks them up and joins their JSON bytes, so its cost does not depend on
the network and 1,000 ids cost about as much as one.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.windows import Window
from ml.models.interface import PREDICTION_COLUMNS, ClvModel
from ml.pipeline import score_frame

TOP_REASONS = 3
logger = logging.getLogger("bentoml.clv_service")
SCORES_FILE = "scores.parquet"
NULL_REASONS = b"null}"


def score(model: ClvModel, snapshot: Window, top_k: int = TOP_REASONS) -> pd.DataFrame:
    """customer_id, the prediction columns, lifecycle_stage and reasons (a JSON list) for every snapshot row; the
    reasons are None (and a warning is logged) when the model cannot be explained, so predictions are still served."""
    try:
        scored = score_frame(model, snapshot, top_k)
    except Exception as exc:  # a model kind or file format explain does not handle
        logger.warning("no reasons for %s model: %s: %s", type(model).__name__, type(exc).__name__, exc)
        scored = score_frame(model, snapshot, with_reasons=False)
    return answers_of(scored)


def answers_of(scored: pd.DataFrame) -> pd.DataFrame:
    """A `ml.pipeline.score_frame` (the customer_scores asset's) as the answers table a version stores."""
    reasons = scored["reason_details"] if "reason_details" in scored else [None] * len(scored)
    return pd.concat([
        pd.DataFrame({"customer_id": scored["customer_id"].astype(str).to_numpy()}),
        scored[PREDICTION_COLUMNS].reset_index(drop=True),
        pd.DataFrame({"lifecycle_stage": scored["lifecycle_stage"].to_numpy(dtype=object),
                      "reasons": np.asarray(reasons, dtype=object)}),
    ], axis=1)


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
            bare = _json(row(cid, vals, stage, version, None))
            without_r[cid] = bare
            # "reasons" is the answer's last key: its stored JSON goes in place of the null (no parse, no dump)
            with_r[cid] = bare[:-len(NULL_REASONS)] + reasons.encode() + b"}" if isinstance(reasons, str) else bare
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

