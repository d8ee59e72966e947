"""Dirty exports: the simulated shop written as CSV with the faults real exports have, and a count of each.

Used by tests and demos to show that ingestion keeps every valid row, quarantines every broken one with a reason,
and loses nothing: rows read = rows kept + rows quarantined, amount read = amount kept + amount quarantined.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.simulator import Shop

# fault -> the quarantine reason code it must produce (ml.data.ingest.REASONS)
ORDER_FAULTS = {
    "missing_customer_id": "missing_customer_id",
    "non_numeric_amount": "non_numeric_amount",
    "absurd_amount": "absurd_amount",
    "malformed_timestamp": "unparseable_timestamp",
    "future_timestamp": "future_timestamp",
    "unknown_status": "unknown_status",
    "duplicate_orders": "duplicate_row",
    "conflicting_customer": "conflicting_customer",
    "non_utf8_bytes": "unparseable_line",
    "wrong_column_count": "unparseable_line",
}
EVENT_FAULTS = {"unknown_event_type": "unknown_event_type"}


def write_dirty_exports(shop: Shop, folder: str | Path, n_per_fault: int = 5, n_duplicates: int = 20,
                        seed: int = 0) -> dict[str, int]:
    """Write customers/orders/events CSVs with injected faults; return {fault: rows injected}."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shop.customers.to_csv(folder / "customers.csv", index=False)
    shop.truth.to_parquet(folder / "truth.parquet", index=False)

    orders = shop.orders.copy()
    orders["order_ts"] = orders["order_ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
    pick = lambda n: orders.iloc[rng.choice(len(shop.orders), n, replace=False)].copy()  # noqa: E731
    bad = {
        "missing_customer_id": pick(n_per_fault).assign(customer_id=""),
        "non_numeric_amount": pick(n_per_fault).assign(amount="12,50 EUR"),
        "absurd_amount": pick(n_per_fault).assign(amount=9.9e12),
        "malformed_timestamp": pick(n_per_fault).assign(order_ts="31/02/2025 25:61"),
        "future_timestamp": pick(n_per_fault).assign(order_ts="2099-01-01 00:00:00"),
        "unknown_status": pick(n_per_fault).assign(status="lost_in_the_post"),
    }
    for i, (name, frame) in enumerate(bad.items()):  # distinct ids: these are not duplicates of real orders
        bad[name] = frame.assign(order_id=[f"BAD{i}-{j}" for j in range(len(frame))])
    duplicates = pick(n_duplicates)
    # an order id whose two lines name two customers: both lines are set aside
    conflict = orders.iloc[:2].copy().assign(order_id="CONFLICT-1", customer_id=["C9999998", "C9999999"])
    dirty = pd.concat([orders, duplicates, conflict, *bad.values()], ignore_index=True)
    dirty = dirty.iloc[rng.permutation(len(dirty))]
    # lines no CSV parser accepts, scattered through the file (not only at its end)
    broken = [f"BADENC-{j},C\xff\xfe{j},2025-01-01 10:00:00,10.0,1,completed,home".encode("latin-1")
              for j in range(n_per_fault)]
    broken += [f"BADCOL-{j},C0000001,2025-01-01 10:00:00,10.0,1,completed,home,extra".encode()
               for j in range(n_per_fault)]
    lines = dirty.to_csv(index=False).encode().split(b"\n")[:-1]
    for line in broken:
        lines.insert(int(rng.integers(1, len(lines) + 1)), line)
    (folder / "orders.csv").write_bytes(b"\n".join(lines) + b"\n")

    events = shop.events.copy()
    events["event_ts"] = events["event_ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
    unknown = events.iloc[rng.choice(len(events), n_per_fault, replace=False)].assign(event_type="teleport")
    pd.concat([events, unknown], ignore_index=True).to_csv(folder / "events.csv", index=False)

    injected = {name: len(frame) for name, frame in bad.items()}
    injected.update(non_utf8_bytes=n_per_fault, wrong_column_count=n_per_fault, unknown_event_type=n_per_fault,
                    duplicate_orders=n_duplicates, conflicting_customer=len(conflict))
    return injected
