"""Feature rows of a request -> the frame and weekly sequences `ClvModel.predict` takes (missing -> NaN / None)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ml.data.windows import CATEGORICAL, SEQUENCE_CHANNELS
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
