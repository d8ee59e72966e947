"""Read one cutoff's rows from the warehouse: features, labels, lifecycle, the weekly activity sequences and the
recent event streams."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

KEY = ["customer_id", "cutoff_date"]
SEQUENCE_CHANNELS = ["orders", "spend", "views", "searches", "carts", "engagements"]
CATEGORICAL = ["region", "device", "channel"]
# customer_events as a dense array: the type's code (EVENT_TYPES index + 1; 0 is padding), then the mart's numbers
EVENT_TYPES = ["order", "view", "search", "add_to_cart", "purchase", "review", "like", "share"]
EVENT_CHANNELS = ["event_type", "days_since_previous", "days_before_cutoff", "amount"]


@dataclass
class Window:
    """Everything known about the customers at one cutoff, aligned row by row on `features.customer_id`."""

    cutoff: date
    features: pd.DataFrame  # customer_id, cutoff_date, feature columns
    sequences: np.ndarray  # [n_customers, n_weeks, len(SEQUENCE_CHANNELS)]
    lifecycle: pd.Series  # lifecycle_stage per row
    labels: pd.DataFrame | None  # future_value, future_orders, returned; None when the horizon has not matured
    horizon_days: int | None = None  # the horizon the labels cover
    # [n_customers, max_events, len(EVENT_CHANNELS)], newest first, padded at the end (event_type 0);
    # None: no streams (a window saved before they existed), read as empty ones
    events: np.ndarray | None = None

    def __post_init__(self):
        if self.events is None:
            self.events = empty_events(len(self.features))

    @property
    def customer_ids(self) -> np.ndarray:
        return self.features["customer_id"].to_numpy()

    @property
    def y(self) -> np.ndarray:
        return self.labels["future_value"].to_numpy(dtype=float)

    def __len__(self) -> int:
        return len(self.features)

    def take(self, rows) -> "Window":
        """The window of these rows (positions), in the order given."""
        rows = np.asarray(rows, dtype=np.int64)
        return Window(self.cutoff, self.features.iloc[rows].reset_index(drop=True), self.sequences[rows],
                      self.lifecycle.iloc[rows].reset_index(drop=True),
                      None if self.labels is None else self.labels.iloc[rows].reset_index(drop=True),
                      self.horizon_days, self.events[rows])

    def at_most(self, n: int | None) -> "Window":
        """At most n customers, chosen by a hash of their id, not by their rows: the same customers at every
        cutoff, and a sample of a bigger n holds those of a smaller one. The window itself when it has n or fewer."""
        if not n or len(self) <= n:
            return self
        keys = pd.util.hash_pandas_object(self.features["customer_id"].astype(str), index=False).to_numpy()
        return self.take(np.sort(np.argpartition(keys, n - 1)[:n]))


def planned_cutoffs(con: duckdb.DuckDBPyConnection) -> list[tuple[str, date, int]]:
    """(role, cutoff_date, horizon_days) of the run's window plan (dbt `cutoffs`), in plan order."""
    return [(r, d, int(h)) for r, d, h in con.execute(
        "SELECT role, cutoff_date, horizon_days FROM main.cutoffs ORDER BY window_index").fetchall()]


def load_window(con: duckdb.DuckDBPyConnection, cutoff: date, n_weeks: int, horizon_days: int | None = None) -> Window:
    """One cutoff's rows; labels at `horizon_days` (None when that horizon has not matured there)."""
    features = con.execute(
        "SELECT * FROM main.customer_features WHERE cutoff_date = ? ORDER BY customer_id", [cutoff]
    ).df()
    ids = features["customer_id"]
    lifecycle = con.execute(
        "SELECT customer_id, lifecycle_stage FROM main.customer_lifecycle WHERE cutoff_date = ?", [cutoff]
    ).df().set_index("customer_id")["lifecycle_stage"].reindex(ids).reset_index(drop=True)
    labels = con.execute(
        "SELECT customer_id, future_value, future_orders, returned FROM main.customer_labels "
        "WHERE cutoff_date = ? AND horizon_days = ?", [cutoff, horizon_days],
    ).df() if horizon_days else pd.DataFrame()
    labels = None if labels.empty else labels.set_index("customer_id").reindex(ids).reset_index()
    seq = con.execute(
        f"SELECT customer_id, week_index, {', '.join(SEQUENCE_CHANNELS)} FROM main.customer_sequences "
        "WHERE cutoff_date = ?", [cutoff],
    ).df()
    return Window(cutoff, features, densify_sequences(seq, ids, n_weeks), lifecycle, labels, horizon_days,
                  densify_events(_events_at(con, cutoff), ids))


def _events_at(con: duckdb.DuckDBPyConnection, cutoff: date) -> pd.DataFrame | None:
    """customer_events of one cutoff; None for a warehouse built before the mart existed."""
    try:
        return con.execute(f"SELECT customer_id, position, {', '.join(EVENT_CHANNELS)} FROM main.customer_events "
                           "WHERE cutoff_date = ?", [cutoff]).df()
    except duckdb.CatalogException:
        return None


def empty_events(n: int) -> np.ndarray:
    return np.zeros((n, 0, len(EVENT_CHANNELS)), dtype=np.float32)


def densify_events(long: pd.DataFrame | None, customer_ids: pd.Series) -> np.ndarray:
    """customer_events rows (customer_id, position, EVENT_CHANNELS) -> dense [customers, longest stream, channels]
    (at most the mart's max_events; a model pads or cuts to its own length): the type as its code, a missing
    days_since_previous (a customer's first event) as NaN."""
    if long is None or long.empty:
        return empty_events(len(customer_ids))
    width = int(long["position"].max()) + 1
    dense = np.zeros((len(customer_ids), width, len(EVENT_CHANNELS)), dtype=np.float32)
    row = pd.Index(customer_ids).get_indexer(long["customer_id"])
    ok = row >= 0
    if not ok.any():
        return dense
    codes = pd.Categorical(long["event_type"], categories=EVENT_TYPES).codes + 1  # an unknown type: padding
    values = long[EVENT_CHANNELS[1:]].to_numpy(dtype=np.float32, na_value=np.nan)
    dense[row[ok], long["position"].to_numpy()[ok].astype(int)] = np.column_stack([codes, values])[ok]
    return dense


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
    np.save(folder / "events.npy", window.events)
    (folder / "window.json").write_text(json.dumps({"cutoff": str(window.cutoff), "horizon_days": window.horizon_days}))


def read_window(folder) -> Window:
    folder = Path(folder)
    features = pd.read_parquet(folder / "features.parquet")
    lifecycle = features.pop("lifecycle_stage")
    labels = pd.read_parquet(folder / "labels.parquet") if (folder / "labels.parquet").exists() else None
    meta = json.loads((folder / "window.json").read_text()) if (folder / "window.json").exists() else {}
    cutoff = date.fromisoformat(meta["cutoff"]) if meta.get("cutoff") not in (None, "None") else (
        pd.Timestamp(features["cutoff_date"].iloc[0]).date() if len(features) else None)
    events = np.load(folder / "events.npy") if (folder / "events.npy").exists() else None
    return Window(cutoff, features, np.load(folder / "sequences.npy"), lifecycle, labels, meta.get("horizon_days"),
                  events)
