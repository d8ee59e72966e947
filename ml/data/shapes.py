"""Real-export shapes of the built-in shop: the ways real shops differ from a clean simulated one, each written as
the files a user would hand to `clv predict` or `source.kind: files`, with the arguments that read them.

    line_level      an Online-Retail-like line export: many lines per invoice (quantity x unit price),
                    cancellations as C-prefixed invoices with negative quantities, exact duplicate lines, lines
                    without a customer id, an invoice naming two customers, US-style timestamps
    wholesale_tail  2 % of customers buy wholesale: orders 30 times larger
    single_cohort   every customer arrives in the first quarter, then the cohort ages (CDNOW's shape)
    short_history   nine months of history before as-of
    seasonal_peak   the scored horizon holds the year-end peak and the promotion week; the production labels don't

Every shape keeps the simulator's truth (`truth`: expected value per customer over the scored horizon).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.simulator import Shop, ShopParams, simulate_shop

SHAPES = ("line_level", "wholesale_tail", "single_cohort", "short_history", "seasonal_peak")


@dataclass
class ShapeExport:
    name: str
    folder: Path  # orders.csv (+ customers.csv, events.csv where the shape has them)
    as_of: date
    horizon_days: int
    truth: pd.DataFrame  # customer_id, expected_value, p_return at as_of
    columns: dict[str, dict[str, str]] = field(default_factory=dict)  # our name -> theirs, per table
    timestamp_format: str | None = None
    cancellation_prefix: str | None = None
    injected: dict[str, int] = field(default_factory=dict)  # fault -> rows, for line_level

    def cli_args(self) -> list[str]:
        """The `clv predict` arguments that read this export (without --out and --workdir)."""
        args = ["--orders", str(self.folder / "orders.csv"), "--as-of", self.as_of.isoformat(),
                "--horizon-days", str(self.horizon_days)]
        for table in ("customers", "events"):
            if (self.folder / f"{table}.csv").exists():
                args += [f"--{table}", str(self.folder / f"{table}.csv")]
        mapping = ",".join(f"{'' if t == 'orders' else t + '.'}{ours}={theirs}"
                           for t, cols in self.columns.items() for ours, theirs in cols.items())
        args += ["--columns", mapping] if mapping else []
        args += ["--timestamp-format", self.timestamp_format] if self.timestamp_format else []
        args += ["--cancellation-prefix", self.cancellation_prefix] if self.cancellation_prefix else []
        return args

    def source(self) -> dict:
        """The `source:` block of clv.yaml that reads this export."""
        return {"kind": "files", "path": str(self.folder), "columns": self.columns,
                "timestamp_format": self.timestamp_format, "cancellation_prefix": self.cancellation_prefix}


def make_shape(name: str, folder: str | Path, n_customers: int = 2000, seed: int = 11) -> ShapeExport:
    """Simulate the shop of shape `name` and write its export into `folder`."""
    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r} (one of {', '.join(SHAPES)})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start, as_of, horizon, params = date(2024, 1, 1), date(2025, 12, 31), 90, ShopParams()
    if name == "wholesale_tail":
        params = replace(params, wholesale_share=0.02)
    elif name == "single_cohort":
        start, as_of, params = date(2024, 1, 1), date(2025, 1, 1), replace(params, acquisition_days=90)
    elif name == "short_history":
        start, horizon = date(2025, 4, 1), 91
    elif name == "seasonal_peak":
        as_of, horizon = date(2025, 10, 31), 61
    shop = simulate_shop(n_customers=n_customers, start=start, end=as_of, seed=seed, truth_cutoffs=[as_of],
                         horizon_days=horizon, params=params)
    truth = shop.truth[["customer_id", "expected_value", "p_return"]].reset_index(drop=True)
    export = ShapeExport(name, folder, as_of, horizon, truth)
    if name == "line_level":
        return _line_level(shop, export, np.random.default_rng(seed))
    orders = shop.orders.assign(order_ts=shop.orders["order_ts"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    if name in ("wholesale_tail", "single_cohort"):  # orders only, as many shops export them
        orders[["order_id", "customer_id", "order_ts", "amount", "status"]].to_csv(folder / "orders.csv", index=False)
    else:
        orders.to_csv(folder / "orders.csv", index=False)
        shop.customers.to_csv(folder / "customers.csv", index=False)
        shop.events.to_csv(folder / "events.csv", index=False)
    return export


def _line_level(shop: Shop, export: ShapeExport, rng: np.random.Generator) -> ShapeExport:
    orders = shop.orders
    sales = orders[orders["status"] == "completed"]
    # each sale becomes 1-5 lines: quantity x unit price, the unit prices splitting the order's amount
    n_lines = 1 + np.minimum(rng.poisson(1.2, size=len(sales)), 4)
    idx = np.repeat(np.arange(len(sales)), n_lines)
    weight = rng.gamma(1.0, size=idx.size)  # each line's share of its order: weights normalised per order
    part = weight / np.bincount(idx, weights=weight, minlength=len(sales))[idx]
    quantity = 1 + rng.poisson(1.0, size=idx.size)
    amount = sales["amount"].to_numpy()[idx] * part
    unit_price = np.maximum(np.round(amount / quantity, 2), 0.01)
    ids = sales["order_id"].str.replace("O", "", regex=False).to_numpy()
    lines = pd.DataFrame({"InvoiceNo": ids[idx], "StockCode": rng.integers(10000, 99999, size=idx.size).astype(str),
                          "Quantity": quantity, "InvoiceDate": sales["order_ts"].to_numpy()[idx],
                          "UnitPrice": unit_price, "CustomerID": sales["customer_id"].to_numpy()[idx]})
    # refunds and cancellations: a C-invoice of its own, dated when it happened, one negative line
    refunds = orders[orders["status"] != "completed"]
    credit = pd.DataFrame({"InvoiceNo": "C" + refunds["order_id"].str.replace("O", "", regex=False),
                           "StockCode": "REFUND", "Quantity": -1, "InvoiceDate": refunds["order_ts"].to_numpy(),
                           "UnitPrice": np.round(-refunds["amount"].to_numpy(), 2),
                           "CustomerID": refunds["customer_id"].to_numpy()})
    lines = pd.concat([lines, credit], ignore_index=True)
    lines["InvoiceDate"] = pd.to_datetime(lines["InvoiceDate"]).dt.strftime("%m/%d/%Y %H:%M")
    # what real line exports carry: exact duplicates, lines without a customer, an invoice naming two customers
    duplicates = lines.iloc[rng.choice(len(lines), 30, replace=False)]
    anonymous = lines.iloc[rng.choice(len(lines), 40, replace=False)].assign(
        InvoiceNo=[f"9{j:08d}" for j in range(40)], CustomerID="")
    conflict = lines.iloc[:2].assign(InvoiceNo="999999999", CustomerID=["C9999998", "C9999999"])
    lines = pd.concat([lines, duplicates, anonymous, conflict], ignore_index=True)
    lines = lines.iloc[rng.permutation(len(lines))].reset_index(drop=True)
    lines.to_csv(export.folder / "orders.csv", index=False)
    export.columns = {"orders": {"order_id": "InvoiceNo", "customer_id": "CustomerID", "order_ts": "InvoiceDate",
                                 "quantity": "Quantity", "unit_price": "UnitPrice"}}
    export.timestamp_format, export.cancellation_prefix = "%m/%d/%Y %H:%M", "C"
    export.injected = {"duplicate_row": len(duplicates), "missing_customer_id": len(anonymous),
                       "conflicting_customer": len(conflict)}
    return export
