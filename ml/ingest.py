"""Ingest a shop's exports (CSV or Parquet) into DuckDB's `raw` schema, losing nothing.

Every row read ends in exactly one place: its typed table (`raw.orders`, `raw.customers`, `raw.events`) or
`raw.quarantine` with a reason. Files already ingested (same content hash) are skipped, so re-ingesting adds nothing.
Parsing and validation run as DuckDB SQL, so a 20M-row export ingests in seconds, not minutes.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ml.simulator import EVENT_TYPES

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
        required=("customer_id", "order_ts", "amount"),
        optional=("order_id", "quantity", "status", "category"),
        types={"order_id": "VARCHAR", "customer_id": "VARCHAR", "order_ts": "TIMESTAMP", "amount": "DOUBLE",
               "quantity": "INTEGER", "status": "VARCHAR", "category": "VARCHAR"},
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
ORDER_STATUSES = ("completed", "returned", "cancelled")


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


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw tables (empty) so dbt always finds its sources, even for a shop with orders only."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for table, spec in SPECS.items():
        cols = ", ".join(f"{c} {t}" for c, t in spec.types.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS raw.{table} ({cols}, _file VARCHAR)")
    con.execute("""CREATE TABLE IF NOT EXISTS raw.quarantine (
        table_name VARCHAR, _file VARCHAR, line BIGINT, reason VARCHAR, record VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS raw.ingested_files (
        table_name VARCHAR, _file VARCHAR, sha256 VARCHAR, rows_read BIGINT, rows_accepted BIGINT,
        rows_quarantined BIGINT, ingested_at TIMESTAMP DEFAULT current_timestamp)""")


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
) -> list[FileReport]:
    """Ingest every new file of `folder`. `columns` maps, per table, our column name to the export's."""
    files = discover(folder)
    if not files["orders"]:
        raise IngestError(f"{folder}: no orders file (expected orders*.csv or orders*.parquet)")
    ensure_raw_schema(con)
    return [
        ingest_file(con, table, path, (columns or {}).get(table, {}), timestamp_format, pseudonym_key)
        for table in TABLES for path in files[table]
    ]


def ingest_file(con, table: str, path: Path, mapping: dict[str, str], timestamp_format: str | None,
                pseudonym_key: str | None) -> FileReport:
    spec = SPECS[table]
    digest = file_digest(path)
    if con.execute("SELECT 1 FROM raw.ingested_files WHERE sha256 = ?", [digest]).fetchone():
        return FileReport(table, path.name, 0, 0, 0, skipped=True)
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty")
    con.execute("BEGIN")
    try:
        n_rejected = _load_text(con, path)
        present = {r[0] for r in con.execute("DESCRIBE _incoming").fetchall()}
        source = {c: mapping.get(c, c) for c in spec.required + spec.optional}
        missing = [source[c] for c in spec.required if source[c] not in present]
        if missing:
            raise IngestError(f"{path}: missing required column(s) {', '.join(missing)} "
                              f"(found: {', '.join(sorted(present)) or 'none'})")
        n_parsed = con.execute("SELECT count(*) FROM _incoming").fetchone()[0]
        if n_parsed + n_rejected == 0:
            raise IngestError(f"{path}: the file has a header but no rows")
        _validate(con, table, spec, source, present, timestamp_format, pseudonym_key)
        accepted = _store(con, table, spec, path.name)
        quarantined = con.execute("SELECT count(*) FROM _checked WHERE reason IS NOT NULL").fetchone()[0]
        con.execute("""INSERT INTO raw.quarantine
            SELECT ?, ?, _line, reason, _record FROM _checked WHERE reason IS NOT NULL""", [table, path.name])
        con.execute("""INSERT INTO raw.quarantine SELECT ?, ?, line, 'unparseable line: ' || error_message,
            csv_line FROM (SELECT DISTINCT ON (line) * FROM _rejects ORDER BY line)""", [table, path.name])
        report = FileReport(table, path.name, n_parsed + n_rejected, accepted, quarantined + n_rejected)
        con.execute("INSERT INTO raw.ingested_files VALUES (?, ?, ?, ?, ?, ?, current_timestamp)",
                    [table, path.name, digest, report.rows_read, report.rows_accepted, report.rows_quarantined])
        con.execute("COMMIT")
    except IngestError:
        con.execute("ROLLBACK")
        raise
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise IngestError(f"{path}: cannot be read ({str(exc).splitlines()[0]})") from None
    return report


def _load_text(con, path: Path) -> int:
    """Load the file as text columns into `_incoming` with a line number; return the count of unparseable lines."""
    con.execute("CREATE OR REPLACE TEMP TABLE _rejects (line BIGINT, error_message VARCHAR, csv_line VARCHAR)")
    if path.suffix.lower() == ".parquet":
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _incoming AS
            SELECT * FROM read_parquet('{_sql_str(path)}')""")
        cols = [r[0] for r in con.execute("DESCRIBE _incoming").fetchall()]
        casts = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in cols)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _incoming AS
            SELECT {casts}, row_number() OVER () AS _line FROM _incoming""")
        return 0
    for leftover in ("_errors", "_scan"):  # DuckDB appends to reject tables: start each file afresh
        con.execute(f"DROP TABLE IF EXISTS {leftover}")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _incoming AS
        SELECT * FROM read_csv('{_sql_str(path)}', all_varchar = true, header = true, store_rejects = true,
                               rejects_scan = '_scan', rejects_table = '_errors')""")
    # line numbers count the header as line 1; rejected lines keep their own numbers
    con.execute("""CREATE OR REPLACE TEMP TABLE _rejects AS
        SELECT line, error_message, csv_line FROM _errors""")
    n_rejected = con.execute("SELECT count(DISTINCT line) FROM _rejects").fetchone()[0]
    con.execute("CREATE OR REPLACE TEMP TABLE _incoming AS SELECT *, NULL::BIGINT AS _line FROM _incoming")
    return n_rejected


def _sql_str(value) -> str:
    return str(value).replace("'", "''")


def _ts_expr(col: str, fmt: str | None) -> str:
    if fmt:
        return f"try_strptime({col}, '{_sql_str(fmt)}')"
    return f"try_cast({col} AS TIMESTAMP)"


def _validate(con, table, spec: TableSpec, source, present, timestamp_format, pseudonym_key) -> None:
    """Typed columns plus `reason` (NULL when the row is valid) into `_checked`."""
    def raw(col: str) -> str:
        src = source[col]
        return f'nullif(trim("{src}"), \'\')' if src in present else "NULL"

    typed, reasons = {}, []
    cid = raw("customer_id")
    if pseudonym_key:
        # keyed hash: the same customer keeps one id across files; the key never leaves the environment
        typed["customer_id"] = f"CASE WHEN {cid} IS NULL THEN NULL ELSE 'P' || left(sha256('{_sql_str(pseudonym_key)}' || ':' || {cid}), 24) END"
    else:
        typed["customer_id"] = cid
    reasons.append(f"WHEN {cid} IS NULL THEN 'missing customer_id'")
    for col, sql_type in spec.types.items():
        if col == "customer_id":
            continue
        value = raw(col)
        if sql_type == "TIMESTAMP":
            typed[col] = _ts_expr(value, timestamp_format)
            if col in spec.required:
                reasons.append(f"WHEN {value} IS NULL THEN 'missing {col}'")
            reasons.append(f"WHEN {value} IS NOT NULL AND {typed[col]} IS NULL THEN 'unparseable {col}: ' || {value}")
            reasons.append(f"WHEN {typed[col]} > current_timestamp + INTERVAL 1 DAY THEN 'future {col}: ' || {value}")
        elif sql_type in ("DOUBLE", "INTEGER"):
            typed[col] = f"try_cast({value} AS {sql_type})"
            if col in spec.required:
                reasons.append(f"WHEN {value} IS NULL THEN 'missing {col}'")
            reasons.append(f"WHEN {value} IS NOT NULL AND {typed[col]} IS NULL THEN 'non-numeric {col}: ' || {value}")
        else:
            typed[col] = value
    if table == "orders":
        typed["status"] = f"coalesce(lower({raw('status')}), 'completed')"
        typed["order_id"] = f"coalesce({raw('order_id')}, 'L' || md5(concat_ws('|', {cid}, {raw('order_ts')}, {raw('amount')})))"
        reasons += [
            f"WHEN {typed['amount']} < 0 THEN 'negative amount: ' || {raw('amount')}",
            f"WHEN {typed['amount']} > {MAX_AMOUNT} THEN 'absurd amount: ' || {raw('amount')}",
            f"WHEN {typed['quantity']} < 0 THEN 'negative quantity: ' || {raw('quantity')}",
            f"WHEN {typed['status']} NOT IN {ORDER_STATUSES} THEN 'unknown status: ' || {raw('status')}",
        ]
    if table == "events":
        typed["event_type"] = f"lower({raw('event_type')})"
        reasons.append(f"WHEN {typed['event_type']} NOT IN {tuple(EVENT_TYPES)} THEN 'unknown event_type: ' || {raw('event_type')}")
    cols = ", ".join(f"{expr} AS {col}" for col, expr in typed.items())
    record = "to_json(struct_pack(" + ", ".join(f'"{c}" := "{c}"' for c in sorted(present - {"_line"})) + "))::VARCHAR"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _checked AS
        SELECT {cols}, CASE {' '.join(reasons)} ELSE NULL END AS reason,
               coalesce(_line, row_number() OVER () + 1) AS _line, {record} AS _record
        FROM _incoming""")


def _store(con, table: str, spec: TableSpec, file_name: str) -> int:
    cols = ", ".join(spec.types)
    con.execute(f"INSERT INTO raw.{table} ({cols}, _file) SELECT {cols}, ? FROM _checked WHERE reason IS NULL",
                [file_name])
    return con.execute("SELECT count(*) FROM _checked WHERE reason IS NULL").fetchone()[0]


def pseudonym_key_from_env() -> str | None:
    key = os.environ.get("CLV_PSEUDONYM_KEY")
    return key or None
