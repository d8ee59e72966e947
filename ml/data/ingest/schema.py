"""What ingestion reads and writes: the tables and their columns, the raw schema in DuckDB, the statuses and the
quarantine reasons, and what a file's ingestion reports (rows and money)."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import duckdb

from ml.data.simulator import EVENT_TYPES

TABLES = ("orders", "customers", "events")
FILE_SUFFIXES = (".csv", ".parquet")
MAX_AMOUNT = 1_000_000.0  # an order above this is taken for a data error, not a sale


@dataclass(frozen=True)
class TableSpec:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    types: dict[str, str]  # our column -> DuckDB type in raw


SPECS = {
    "orders": TableSpec(
        required=("customer_id", "order_ts", "amount"),  # amount, or quantity and unit_price
        optional=("order_id", "quantity", "unit_price", "status", "category"),
        types={"order_id": "VARCHAR", "customer_id": "VARCHAR", "order_ts": "TIMESTAMP", "amount": "DOUBLE",
               "quantity": "INTEGER", "unit_price": "DOUBLE", "status": "VARCHAR", "category": "VARCHAR"},
    ),
    "customers": TableSpec(
        required=("customer_id",),
        optional=("signup_ts", "region", "device", "channel"),
        types={"customer_id": "VARCHAR", "signup_ts": "TIMESTAMP", "region": "VARCHAR", "device": "VARCHAR",
               "channel": "VARCHAR"},
    ),
    "events": TableSpec(
        required=("customer_id", "event_ts", "event_type"),
        optional=(),
        types={"customer_id": "VARCHAR", "event_ts": "TIMESTAMP", "event_type": "VARCHAR"},
    ),
}
WITHHELD_LINE = "(withheld: the raw line may hold a customer id; see the file at this line)"
# an export's status -> ours: a sale line is 'completed'; refund lines are 'returned' or 'cancelled'
STATUSES = {"completed": "completed", "complete": "completed", "paid": "completed", "fulfilled": "completed",
            "shipped": "completed", "delivered": "completed",
            "returned": "returned", "return": "returned", "refunded": "returned", "refund": "returned",
            "partially_refunded": "returned",
            "cancelled": "cancelled", "canceled": "cancelled", "cancellation": "cancelled", "voided": "cancelled"}
# why a row was quarantined: one code per cause (the column and the value it read are beside it)
REASONS = {
    "missing_customer_id": "no customer id",
    "missing_timestamp": "no timestamp",
    "unparseable_timestamp": "a timestamp that does not parse (see timestamp_format)",
    "future_timestamp": "a timestamp more than a day in the future",
    "missing_amount": "no amount (nor quantity x unit_price)",
    "non_numeric_amount": "an amount, quantity or unit price that is not a number",
    "absurd_amount": f"an amount beyond +-{MAX_AMOUNT:,.0f}",
    "unknown_status": f"a status outside {', '.join(sorted(STATUSES))}",
    "unknown_event_type": f"an event type outside {', '.join(EVENT_TYPES)}",
    "duplicate_row": "a row identical in every column to one already kept",
    "conflicting_customer": "an order id whose lines name more than one customer",
    "unparseable_line": "a line the CSV parser cannot read (wrong column count, bad encoding...)",
}


class IngestError(Exception):
    """A file cannot be ingested at all. The message is one line naming the file and the problem."""


@dataclass(frozen=True)
class FileReport:
    table: str
    file: str
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    skipped: bool = False  # already ingested (same content)
    # money (orders): read = kept + quarantined, kept = sales - refunds; Decimal, exact to the cent
    amount_read: Decimal = Decimal(0)
    amount_kept: Decimal = Decimal(0)
    amount_quarantined: Decimal = Decimal(0)
    sales_kept: Decimal = Decimal(0)
    refunds_kept: Decimal = Decimal(0)  # a positive number: what was refunded or cancelled
    rows_without_amount: int = 0  # quarantined rows whose amount could not be read: no money to account
    reasons: dict = field(default_factory=dict)  # reason code -> rows


@dataclass(frozen=True)
class OrderOptions:
    """How an orders export marks what the columns cannot say by themselves."""

    cancellation_prefix: str | None = None  # an order id starting with it is a cancellation (e.g. "C")
    timezone: str = "UTC"  # the zone every timestamp is converted to; naive timestamps are taken to be in it


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw tables (empty) so dbt always finds its sources, even for a shop with orders only."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for table, spec in SPECS.items():
        cols = ", ".join(f"{c} {t}" for c, t in spec.types.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS raw.{table} ({cols}, _file VARCHAR)")
    for table, spec in SPECS.items():  # a warehouse from before a column existed gets it (NULL in old rows)
        for col, sql_type in spec.types.items():
            con.execute(f"ALTER TABLE raw.{table} ADD COLUMN IF NOT EXISTS {col} {sql_type}")
    con.execute("ALTER TABLE raw.orders ADD COLUMN IF NOT EXISTS _line_key VARCHAR")  # ingestion's duplicate check
    con.execute("""CREATE TABLE IF NOT EXISTS raw.quarantine (
        table_name VARCHAR, _file VARCHAR, line BIGINT, reason VARCHAR, field VARCHAR, value VARCHAR,
        amount DECIMAL(38, 6), record VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS raw.ingested_files (
        table_name VARCHAR, _file VARCHAR, sha256 VARCHAR, rows_read BIGINT, rows_accepted BIGINT,
        rows_quarantined BIGINT, ingested_at TIMESTAMP DEFAULT current_timestamp, amount_read DECIMAL(38, 6),
        amount_kept DECIMAL(38, 6), amount_quarantined DECIMAL(38, 6))""")
    for table, col, sql_type in [("quarantine", "field", "VARCHAR"), ("quarantine", "value", "VARCHAR"),
                                 ("quarantine", "amount", "DECIMAL(38, 6)"),
                                 *[("ingested_files", c, "DECIMAL(38, 6)")
                                   for c in ("amount_read", "amount_kept", "amount_quarantined")]]:
        con.execute(f"ALTER TABLE raw.{table} ADD COLUMN IF NOT EXISTS {col} {sql_type}")


MONEY = "CAST(amount AS DECIMAL(38, 6))"  # exact sums: a double summed over millions of lines drifts off the cent
