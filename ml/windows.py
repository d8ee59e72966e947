"""Read one cutoff's rows from the warehouse: features, labels, lifecycle and the weekly activity sequences."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

KEY = ["customer_id", "cutoff_date"]
SEQUENCE_CHANNELS = ["orders", "spend", "views", "searches", "carts", "engagements"]
CATEGORICAL = ["region", "device", "channel"]


@dataclass
class Window:
    """Everything known about the customers at one cutoff, aligned row by row on `features.customer_id`."""

    cutoff: date
    features: pd.DataFrame  # customer_id, cutoff_date, feature columns
    sequences: np.ndarray  # [n_customers, n_weeks, len(SEQUENCE_CHANNELS)]
    lifecycle: pd.Series  # lifecycle_stage per row
    labels: pd.DataFrame | None  # future_value, future_orders, returned; None when the horizon has not matured

    @property
    def customer_ids(self) -> np.ndarray:
        return self.features["customer_id"].to_numpy()

    @property
    def y(self) -> np.ndarray:
        return self.labels["future_value"].to_numpy(dtype=float)

    def __len__(self) -> int:
        return len(self.features)


def cutoffs(con: duckdb.DuckDBPyConnection) -> dict[str, list[date]]:
    """Cutoff dates by role ('train', 'holdout', 'score'), oldest first."""
    rows = con.execute("SELECT role, cutoff_date FROM main.cutoffs ORDER BY cutoff_date").fetchall()
    out: dict[str, list[date]] = {}
    for role, day in rows:
        out.setdefault(role, []).append(day)
    return out


def load_window(con: duckdb.DuckDBPyConnection, cutoff: date, n_weeks: int) -> Window:
    features = con.execute(
        "SELECT * FROM main.customer_features WHERE cutoff_date = ? ORDER BY customer_id", [cutoff]
    ).df()
    ids = features["customer_id"]
    lifecycle = con.execute(
        "SELECT customer_id, lifecycle_stage FROM main.customer_lifecycle WHERE cutoff_date = ?", [cutoff]
    ).df().set_index("customer_id")["lifecycle_stage"].reindex(ids).reset_index(drop=True)
    labels = con.execute(
        "SELECT customer_id, future_value, future_orders, returned FROM main.customer_labels WHERE cutoff_date = ?",
        [cutoff],
    ).df()
    labels = None if labels.empty else labels.set_index("customer_id").reindex(ids).reset_index()
    seq = con.execute(
        f"SELECT customer_id, week_index, {', '.join(SEQUENCE_CHANNELS)} FROM main.customer_sequences "
        "WHERE cutoff_date = ?", [cutoff],
    ).df()
    return Window(cutoff, features, densify_sequences(seq, ids, n_weeks), lifecycle, labels)


def densify_sequences(long: pd.DataFrame, customer_ids: pd.Series, n_weeks: int) -> np.ndarray:
    """Sparse (customer_id, week_index, channels...) rows -> dense [customers, weeks, channels] array."""
    dense = np.zeros((len(customer_ids), n_weeks, len(SEQUENCE_CHANNELS)), dtype=np.float32)
    if long.empty:
        return dense
    row = pd.Index(customer_ids).get_indexer(long["customer_id"])
    ok = row >= 0
    week = long["week_index"].to_numpy()[ok].astype(int)
    values = long[SEQUENCE_CHANNELS].to_numpy(dtype=np.float32, na_value=0.0)[ok]
    dense[row[ok], week] = values
    return dense


def save_window(window: Window, folder) -> None:
    """Persist a window as Parquet + NumPy files (the training set a model version was fitted on)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    window.features.assign(lifecycle_stage=window.lifecycle.to_numpy()).to_parquet(folder / "features.parquet")
    if window.labels is not None:
        window.labels.to_parquet(folder / "labels.parquet")
    elif (folder / "labels.parquet").exists():
        (folder / "labels.parquet").unlink()
    np.save(folder / "sequences.npy", window.sequences)


def read_window(folder) -> Window:
    folder = Path(folder)
    features = pd.read_parquet(folder / "features.parquet")
    lifecycle = features.pop("lifecycle_stage")
    labels = pd.read_parquet(folder / "labels.parquet") if (folder / "labels.parquet").exists() else None
    cutoff = pd.Timestamp(features["cutoff_date"].iloc[0]).date() if len(features) else None
    return Window(cutoff, features, np.load(folder / "sequences.npy"), lifecycle, labels)
