"""Ingest a shop's exports (CSV or Parquet) into DuckDB's `raw` schema, losing nothing.

Every row read ends in exactly one place: its typed table (`raw.orders`, `raw.customers`, `raw.events`) or
`raw.quarantine` with a reason, the file and the line it came from (for a Parquet file, its row number; the header
of a CSV is line 1). Files already ingested (same content hash) are skipped, so re-ingesting adds nothing.
Parsing and validation run as DuckDB SQL, so a 20M-row export ingests in seconds, not minutes.

Orders are lines: rows sharing an order id are lines of one order (dbt staging sums them). A refund or cancellation
(a refund status, a negative amount or quantity, or an order id with the configured cancellation prefix) is data:
it is stored as a negative line, dated when it happened. Only rows identical in every column are duplicates; they,
and the lines of an order id that names two customers, are quarantined. Money is accounted like rows, per file:
amount read = amount kept (sales - refunds) + amount quarantined, in exact decimal arithmetic.

Quarantine reasons are a fixed vocabulary (REASONS); the offending column and value have columns of their own.
Timestamps with a UTC offset are converted to the configured zone (UTC by default); those without are taken to be
in it already.

With a pseudonym key, customer ids are replaced at the door by a keyed hash (the same id gets the same pseudonym in
every file and table; without the key nobody can map it back), also inside quarantined records; a quarantined line
that could not be parsed is withheld instead, since it may hold a raw id: its file and line say where to look.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import numpy as np
import pyarrow as pa

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


def discover(folder: str | Path) -> dict[str, list[Path]]:
    """Files per table in `folder`: `orders*.csv|parquet`, `customers*...`, `events*...`, in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError(f"{folder}: the configured data folder does not exist")
    found = {t: [] for t in TABLES}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in FILE_SUFFIXES:
            for table in TABLES:
                if path.name.lower().startswith(table):
                    found[table].append(path)
    return found


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pending_files(con: duckdb.DuckDBPyConnection, folder: str | Path) -> list[tuple[str, Path]]:
    """(table, path) of files in `folder` whose content has not been ingested yet."""
    ensure_raw_schema(con)
    done = {r[0] for r in con.execute("SELECT sha256 FROM raw.ingested_files").fetchall()}
    return [(t, p) for t, paths in discover(folder).items() for p in paths if file_digest(p) not in done]


def ingest_folder(
    con: duckdb.DuckDBPyConnection,
    folder: str | Path,
    columns: dict[str, dict[str, str]] | None = None,
    timestamp_format: str | None = None,
    pseudonym_key: str | None = None,
    options: OrderOptions | None = None,
) -> list[FileReport]:
    """Ingest every new file of `folder`. `columns` maps, per table, our column name to the export's."""
    files = discover(folder)
    zone = (options or OrderOptions()).timezone
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise IngestError(f"timezone '{zone}' is not a time zone name (e.g. UTC, Europe/Berlin)") from None
    if not files["orders"]:
        raise IngestError(f"{folder}: no orders file (expected orders*.csv or orders*.parquet)")
    ensure_raw_schema(con)
    return [
        ingest_file(con, table, path, (columns or {}).get(table, {}), timestamp_format, pseudonym_key, options)
        for table in TABLES for path in files[table]
    ]


def ingest_file(con, table: str, path: Path, mapping: dict[str, str], timestamp_format: str | None,
                pseudonym_key: str | None, options: OrderOptions | None = None) -> FileReport:
    spec = SPECS[table]
    options = options or OrderOptions()
    digest = file_digest(path)
    if con.execute("SELECT 1 FROM raw.ingested_files WHERE sha256 = ?", [digest]).fetchone():
        return FileReport(table, path.name, 0, 0, 0, skipped=True)
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty")
    try:
        # parse and validate in temporary tables (their rowid is the file order only outside a transaction)
        n_rejected = _load_text(con, path)
        present = {r[0] for r in con.execute("DESCRIBE _incoming").fetchall()} - {"_row"}
        source = {c: mapping.get(c, c) for c in spec.required + spec.optional}
        _check_columns(path, table, spec, source, present)
        n_parsed = con.execute("SELECT count(*) FROM _incoming").fetchone()[0]
        if n_parsed + n_rejected == 0:
            raise IngestError(f"{path}: the file has a header but no rows")
        record = _validate(con, table, spec, source, present, timestamp_format, pseudonym_key, options)
        if table == "orders":
            _flag_duplicates_and_conflicts(con)
        con.execute("BEGIN")  # the file lands whole or not at all
        try:
            accepted = _store(con, table, spec, path.name)
            quarantined = _quarantine(con, table, path, n_parsed, record, pseudonym_key is not None)
            report = _report(con, table, path.name, n_parsed + n_rejected, accepted, quarantined, n_rejected)
            con.execute("""INSERT INTO raw.ingested_files (table_name, _file, sha256, rows_read, rows_accepted,
                rows_quarantined, ingested_at, amount_read, amount_kept, amount_quarantined)
                VALUES (?, ?, ?, ?, ?, ?, current_timestamp, ?, ?, ?)""",
                        [table, path.name, digest, report.rows_read, report.rows_accepted, report.rows_quarantined,
                         report.amount_read, report.amount_kept, report.amount_quarantined])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    except duckdb.Error as exc:
        raise IngestError(f"{path}: cannot be read ({str(exc).splitlines()[0]})") from None
    finally:  # the file's text lives in memory until dropped
        con.execute("DROP VIEW IF EXISTS _incoming")
        for scratch in ("_parsed", "_checked", "_rejects", "_errors", "_scan"):
            con.execute(f"DROP TABLE IF EXISTS {scratch}")
    return report


def _check_columns(path: Path, table: str, spec: TableSpec, source: dict, present: set) -> None:
    """One line naming the file and what it lacks. Orders need an amount, or a quantity and a unit price."""
    required = list(spec.required)
    if table == "orders" and source["amount"] not in present and source["unit_price"] in present:
        required = [c for c in required if c != "amount"] + ["quantity"]
    missing = [source[c] for c in required if source[c] not in present]
    if missing:
        hint = " (or quantity and unit_price)" if table == "orders" and "amount" in [
            c for c in required if source[c] not in present] else ""
        raise IngestError(f"{path}: missing required column(s) {', '.join(missing)}{hint} "
                          f"(found: {', '.join(sorted(present)) or 'none'})")


def _report(con, table: str, file_name: str, rows_read: int, accepted: int, quarantined: int,
            n_rejected: int) -> FileReport:
    """The file's rows and money: read = kept + quarantined, both in rows and in DECIMAL sums of signed amounts."""
    reasons = dict(con.execute("SELECT reason, count(*) FROM _checked WHERE reason IS NOT NULL GROUP BY 1").fetchall())
    if n_rejected:
        reasons["unparseable_line"] = n_rejected
    if table != "orders":
        return FileReport(table, file_name, rows_read, accepted, quarantined, reasons=reasons)
    kept, held, sales, refunds, no_amount = con.execute(f"""SELECT
        coalesce(sum({MONEY}) FILTER (WHERE reason IS NULL), 0),
        coalesce(sum({MONEY}) FILTER (WHERE reason IS NOT NULL), 0),
        coalesce(sum({MONEY}) FILTER (WHERE reason IS NULL AND amount > 0), 0),
        coalesce(-sum({MONEY}) FILTER (WHERE reason IS NULL AND amount < 0), 0),
        count(*) FILTER (WHERE reason IS NOT NULL AND amount IS NULL)
        FROM _checked""").fetchone()
    return FileReport(table, file_name, rows_read, accepted, quarantined, amount_read=kept + held, amount_kept=kept,
                      amount_quarantined=held, sales_kept=sales, refunds_kept=refunds,
                      rows_without_amount=int(no_amount) + n_rejected, reasons=reasons)


MONEY = "CAST(amount AS DECIMAL(38, 6))"  # exact sums: a double summed over millions of lines drifts off the cent


def _load_text(con, path: Path) -> int:
    """Load the file as text columns into `_incoming` with `_row` (1 = first data row), unparseable lines into
    `_rejects`; return the count of unparseable lines."""
    con.execute("CREATE OR REPLACE TEMP TABLE _rejects (line BIGINT, error_message VARCHAR, csv_line VARCHAR)")
    if path.suffix.lower() == ".parquet":
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _parsed AS
            SELECT * FROM read_parquet('{_sql_str(path)}', file_row_number = true)""")
        cols = [r[0] for r in con.execute("DESCRIBE _parsed").fetchall() if r[0] != "file_row_number"]
        casts = ", ".join(f"CAST({_ident(c)} AS VARCHAR) AS {_ident(c)}" for c in cols)
        con.execute(f"""CREATE OR REPLACE TEMP VIEW _incoming AS
            SELECT {casts}, file_row_number + 1 AS _row FROM _parsed""")
        return 0
    for leftover in ("_errors", "_scan"):  # DuckDB appends to reject tables: start each file afresh
        con.execute(f"DROP TABLE IF EXISTS {leftover}")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _parsed AS
        SELECT * FROM read_csv('{_sql_str(path)}', all_varchar = true, header = true, store_rejects = true,
                               rejects_scan = '_scan', rejects_table = '_errors')""")
    # one row per unparseable line (a line can break several rules), numbered in the file (header = line 1)
    con.execute("""CREATE OR REPLACE TEMP TABLE _rejects AS
        SELECT DISTINCT ON (line) line, error_message, csv_line FROM _errors ORDER BY line""")
    # rowid follows the file's order (DuckDB preserves insertion order): the parsed rows' ordinal
    con.execute("CREATE OR REPLACE TEMP VIEW _incoming AS SELECT *, rowid + 1 AS _row FROM _parsed")
    return con.execute("SELECT count(*) FROM _rejects").fetchone()[0]


def _quarantine(con, table: str, path: Path, n_parsed: int, record: str, withhold_lines: bool) -> int:
    """Quarantine the rows that failed validation and the lines that could not be parsed; return their count."""
    rows = np.asarray(con.execute("SELECT _row FROM _checked WHERE reason IS NOT NULL ORDER BY _row")
                      .fetchnumpy()["_row"], dtype=np.int64)
    rejected = np.asarray(con.execute("SELECT line FROM _rejects ORDER BY line").fetchnumpy()["line"], dtype=np.int64)
    row_lines, rejected_lines = rows, rejected  # a Parquet file: row numbers
    if path.suffix.lower() == ".csv" and (rows.size or rejected.size):
        row_lines, rejected_lines = file_lines(path, rejected, n_parsed, rows)
    con.register("_row_lines", pa.table({"_row": rows, "line": row_lines}))
    con.register("_rejected_lines", pa.table({"reported": rejected, "line": rejected_lines}))
    money = MONEY.replace("amount", "c.amount") if table == "orders" else "NULL"
    try:
        con.execute(f"""INSERT INTO raw.quarantine (table_name, _file, line, reason, field, value, amount, record)
            SELECT ?, ?, l.line, c.reason, c.reason_field, c.reason_value, {money}, {record}
            FROM _checked c JOIN _row_lines l USING (_row) JOIN _incoming i USING (_row)""", [table, path.name])
        text = "?" if withhold_lines else "r.csv_line"
        con.execute(f"""INSERT INTO raw.quarantine (table_name, _file, line, reason, field, value, amount, record)
            SELECT ?, ?, l.line, 'unparseable_line', NULL, r.error_message, NULL, {text}
            FROM _rejects r JOIN _rejected_lines l ON r.line = l.reported""",
                    [table, path.name] + ([WITHHELD_LINE] if withhold_lines else []))
    finally:
        con.unregister("_row_lines")
        con.unregister("_rejected_lines")
    return rows.size + rejected.size


def file_lines(path: Path, rejected: np.ndarray, n_parsed: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lines in the CSV file (header = 1) of the parsed rows `rows` (1 = first parsed row) and of the lines DuckDB
    rejected (`rejected`, as DuckDB numbers them).

    When every record sits on one line, DuckDB's numbers are the file's and parsed row i is line
    i + 1 + (rejected lines before it). Blank lines or line breaks inside quoted fields make the file longer than
    its records; then the file is split where DuckDB splits it, at line breaks outside quotes (DuckDB numbers these
    pieces, blank ones included), and each record is given the line it starts on.
    """
    if _count_lines(path) == 1 + n_parsed + rejected.size:
        before = rejected - 2 - np.arange(rejected.size)  # parsed rows before each rejected line
        return rows + 1 + np.searchsorted(before, rows, side="left"), rejected
    start, blank = _pieces(path)
    reported = rejected - 1  # DuckDB's line L is piece L - 1 (the header is piece 0)
    parsed = np.setdiff1d(np.flatnonzero(~blank[1:]) + 1, reported)
    if parsed.size != n_parsed or (reported.size and reported.max() >= start.size):
        # a dialect this split does not follow (another quote character...): one record per line
        before = rejected - 2 - np.arange(rejected.size)
        return rows + 1 + np.searchsorted(before, rows, side="left"), rejected
    return start[parsed[rows - 1]], start[reported]


def _count_lines(path: Path, chunk: int = 1 << 24) -> int:
    count, last = 0, b"\n"
    with path.open("rb") as f:
        while block := f.read(chunk):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _pieces(path: Path, chunk: int = 1 << 23) -> tuple[np.ndarray, np.ndarray]:
    """The file cut at line breaks outside double quotes (an escaped quote "" counts twice and keeps the parity):
    each piece's first line (1-based) and whether it is blank."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    breaks, outside, parity = [], [], 0
    for lo in range(0, data.size, chunk):
        block = data[lo:lo + chunk]
        quotes = np.cumsum(block == ord('"'), dtype=np.int64) + parity
        newline = np.flatnonzero(block == ord("\n"))
        breaks.append(newline + lo)
        outside.append(quotes[newline] % 2 == 0)
        parity = int(quotes[-1] % 2)
    breaks, outside = np.concatenate(breaks), np.concatenate(outside)
    start_pos = np.concatenate([[0], breaks[outside] + 1])
    end_pos = np.concatenate([breaks[outside], [data.size]])
    start_line = np.concatenate([[1], np.flatnonzero(outside) + 2])  # the k-th line break (from 0) ends line k + 1
    length = end_pos - start_pos
    carriage = (length > 0) & (data[np.maximum(end_pos - 1, 0)] == ord("\r"))
    if length[-1] == 0:  # the final line break ends the last record; nothing follows it
        start_line, length, carriage = start_line[:-1], length[:-1], carriage[:-1]
    return start_line, length - carriage == 0


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_str(value) -> str:
    return str(value).replace("'", "''")


OFFSET = r"([+-][0-9]{2}(:?[0-9]{2})?|[zZ])$"  # a timestamp that names its UTC offset


def _ts_expr(col: str, fmt: str | None, zone: str) -> str:
    """A timestamp in `zone`: one with a UTC offset is converted to it, one without is taken to be in it."""
    z = _sql_str(zone)
    iso = (f"CASE WHEN regexp_matches({col}, '{OFFSET}') "
           f"THEN timezone('{z}', try_cast({col} AS TIMESTAMPTZ)) ELSE try_cast({col} AS TIMESTAMP) END")
    if fmt:  # the user's format first (with %z it yields an instant); ISO too: a Parquet file's timestamps as text
        parsed = f"try_strptime({col}, '{_sql_str(fmt)}')"
        user = f"timezone('{z}', {parsed})" if "%z" in fmt or "%Z" in fmt else parsed
        return f"coalesce({user}, {iso})"
    return iso


def _validate(con, table, spec: TableSpec, source, present, timestamp_format, pseudonym_key,
              options: OrderOptions) -> str:
    """Typed columns plus `reason` (a code of REASONS, NULL when the row is valid), `reason_field` and
    `reason_value` into `_checked`; returns the SQL of a quarantined row's record. The first rule a row breaks is
    its reason."""
    def raw(col: str) -> str:
        src = source.get(col, col)
        return f"nullif(trim({_ident(src)}), '')" if src in present else "NULL"

    typed, rules = {}, []  # rules: (condition, reason code, our column, the value it read)
    cid = raw("customer_id")
    if pseudonym_key:
        # keyed hash: the same customer keeps one id across files; the key never leaves the environment
        key = _sql_str(pseudonym_key)
        typed["customer_id"] = (f"CASE WHEN {cid} IS NULL THEN NULL "
                                f"ELSE 'P' || left(sha256('{key}' || ':' || {cid}), 24) END")
    else:
        typed["customer_id"] = cid
    rules.append((f"{cid} IS NULL", "missing_customer_id", "customer_id", "NULL"))
    for col, sql_type in spec.types.items():
        if col == "customer_id":
            continue
        value = raw(col)
        if sql_type == "TIMESTAMP":
            typed[col] = _ts_expr(value, timestamp_format, options.timezone)
            if col in spec.required:
                rules.append((f"{value} IS NULL", "missing_timestamp", col, "NULL"))
            rules.append((f"{value} IS NOT NULL AND {typed[col]} IS NULL", "unparseable_timestamp", col, value))
            rules.append((f"{typed[col]} > current_timestamp + INTERVAL 1 DAY", "future_timestamp", col, value))
        elif sql_type in ("DOUBLE", "INTEGER"):
            typed[col] = f"try_cast({value} AS {sql_type})"
            rules.append((f"{value} IS NOT NULL AND {typed[col]} IS NULL", "non_numeric_amount", col, value))
        else:
            typed[col] = value
    if table == "orders":
        _order_semantics(typed, rules, raw, source, present, options)
        # the line's identity: every column of the export (mapped or not), the customer as stored (a pseudonym)
        others = [c for c in sorted(present) if c != source["customer_id"]]
        typed["_line_key"] = ("md5(CAST(struct_pack(" + ", ".join(
            [f"c{i} := {_ident(c)}" for i, c in enumerate(others)] + [f"cid := {typed['customer_id']}"]) +
            ") AS VARCHAR))")
    if table == "events":
        typed["event_type"] = f"lower({raw('event_type')})"
        rules.append((f"{typed['event_type']} NOT IN {tuple(EVENT_TYPES)}", "unknown_event_type", "event_type",
                      raw("event_type")))
    cols = ", ".join(f"{expr} AS {col}" for col, expr in typed.items())
    case = lambda pick: "CASE " + " ".join(f"WHEN {r[0]} THEN {pick(r)}" for r in rules) + " ELSE NULL END"  # noqa: E731
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _checked AS
        SELECT {cols}, {case(lambda r: repr(r[1]))} AS reason, {case(lambda r: repr(r[2]))} AS reason_field,
               CAST({case(lambda r: r[3])} AS VARCHAR) AS reason_value, _row
        FROM _incoming""")
    # a quarantined row's record as the export had it (_incoming i), except the customer id: its pseudonym (_checked c)
    fields = {c: f"i.{_ident(c)}" for c in sorted(present)}
    if pseudonym_key and source["customer_id"] in fields:
        fields[source["customer_id"]] = "c.customer_id"
    return "to_json(struct_pack(" + ", ".join(f"{_ident(c)} := {e}" for c, e in fields.items()) + "))::VARCHAR"


def _order_semantics(typed: dict, rules: list, raw, source: dict, present: set, options: OrderOptions) -> None:
    """An order line's signed amount (refunds and cancellations negative), our status, and an order id.

    amount: the export's amount, else quantity x unit_price. A line is a refund when its status says so, its
    amount or quantity is negative, or its order id starts with the cancellation prefix; its amount is then
    -|amount| and its status 'returned' (or 'cancelled' when the status or the prefix says cancelled).
    """
    given = typed["amount"] if source["amount"] in present else f"{typed['quantity']} * {typed['unit_price']}"
    status_in = f"lower({raw('status')})"
    mapped = "CASE " + " ".join(f"WHEN {status_in} = '{k}' THEN '{v}'" for k, v in STATUSES.items()) + " END"
    order_id = raw("order_id")
    prefix = (f"starts_with({order_id}, '{_sql_str(options.cancellation_prefix)}')"
              if options.cancellation_prefix else "false")
    refund = (f"(coalesce({mapped} IN ('returned', 'cancelled'), false) OR {given} < 0 "
              f"OR coalesce({typed['quantity']} < 0, false) OR coalesce({prefix}, false))")
    typed["amount"] = f"CASE WHEN {refund} THEN -abs({given}) ELSE {given} END"
    typed["status"] = (f"CASE WHEN NOT {refund} THEN 'completed' "
                       f"WHEN {mapped} = 'cancelled' OR coalesce({prefix}, false) THEN 'cancelled' ELSE 'returned' END")
    # an export without order ids: the lines of one customer at one moment are one order
    typed["order_id"] = (f"coalesce({order_id}, 'L' || md5(concat_ws('|', {typed['customer_id']}, "
                         f"{raw('order_ts')})))")
    amount_src = "amount" if source["amount"] in present else "unit_price"
    rules.append((f"{given} IS NULL AND {raw(amount_src)} IS NULL", "missing_amount", amount_src, "NULL"))
    rules.append((f"abs({given}) > {MAX_AMOUNT}", "absurd_amount", amount_src, f"CAST({given} AS VARCHAR)"))
    rules.append((f"{raw('status')} IS NOT NULL AND {mapped} IS NULL", "unknown_status", "status", raw("status")))


def _flag_duplicates_and_conflicts(con) -> None:
    """Among the valid lines: a line identical in every column of the export (its `_line_key`) to an earlier one
    (in this file or already in raw.orders) is a duplicate; the lines of an order id that names two customers (here or with raw.orders) are
    a conflict. Both are quarantined; the first of identical lines is kept."""
    con.execute("""UPDATE _checked SET reason = 'duplicate_row', reason_field = NULL, reason_value = order_id
        WHERE _row IN (
            SELECT _row FROM (
                SELECT _row, _line_key, row_number() OVER (PARTITION BY _line_key ORDER BY _row) AS nth
                FROM _checked WHERE reason IS NULL)
            WHERE nth > 1 OR _line_key IN (SELECT _line_key FROM raw.orders WHERE _line_key IS NOT NULL))""")
    con.execute("""UPDATE _checked SET reason = 'conflicting_customer', reason_field = 'order_id',
            reason_value = order_id
        WHERE reason IS NULL AND order_id IN (
            SELECT order_id FROM (
                SELECT order_id, customer_id FROM _checked WHERE reason IS NULL
                UNION SELECT order_id, customer_id FROM raw.orders)
            GROUP BY 1 HAVING count(DISTINCT customer_id) > 1)""")


def _store(con, table: str, spec: TableSpec, file_name: str) -> int:
    cols = ", ".join(list(spec.types) + (["_line_key"] if table == "orders" else []))
    return con.execute(f"INSERT INTO raw.{table} ({cols}, _file) SELECT {cols}, ? FROM _checked WHERE reason IS NULL",
                       [file_name]).fetchone()[0]


def pseudonym_key_from_env() -> str | None:
    key = os.environ.get("CLV_PSEUDONYM_KEY")
    return key or None
