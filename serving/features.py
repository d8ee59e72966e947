"""Feature rows of a request -> the frame, weekly sequences and event streams `ClvModel.predict` takes
(missing -> NaN / None / no events)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ml.data.windows import CATEGORICAL, EVENT_CHANNELS, EVENT_TYPES, SEQUENCE_CHANNELS
from serving.schemas import NUMERIC_FEATURES, CustomerFeatures


def frame(rows: list[CustomerFeatures]) -> pd.DataFrame:
    numeric = np.array([[getattr(r, c) for c in NUMERIC_FEATURES] for r in rows], dtype=float).reshape(
        len(rows), len(NUMERIC_FEATURES))  # None -> NaN
    out = pd.DataFrame(numeric, columns=NUMERIC_FEATURES)
    for c in CATEGORICAL:
        out[c] = pd.Series([getattr(r, c) for r in rows], dtype="string")
    out.insert(0, "customer_id", pd.Series([r.customer_id for r in rows], dtype="string"))
    return out


def sequences(rows: list[CustomerFeatures], weeks: int) -> np.ndarray:
    """[rows, weeks, channels]; a row without weekly activity had none. Rows align on their most recent week."""
    out = np.zeros((len(rows), weeks, len(SEQUENCE_CHANNELS)), dtype=np.float32)
    for i, r in enumerate(rows):
        if r.weekly_activity and weeks:
            recent = np.asarray(r.weekly_activity, dtype=np.float32)[-weeks:]
            out[i, weeks - len(recent):] = recent
    return out


def events(rows: list[CustomerFeatures]) -> np.ndarray:
    """[rows, longest stream, EVENT_CHANNELS] as ml.data.windows.densify_events lays them out (newest first, the
    type as its code, padding 0, a missing gap NaN)."""
    out = np.zeros((len(rows), max((len(r.events or []) for r in rows), default=0), len(EVENT_CHANNELS)),
                   dtype=np.float32)
    for i, r in enumerate(rows):
        for j, e in enumerate(r.events or []):
            gap = np.nan if e.days_since_previous is None else e.days_since_previous
            out[i, j] = (EVENT_TYPES.index(e.event_type) + 1, gap, e.days_before_cutoff, e.amount)
    return out
