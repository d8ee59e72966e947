"""Ingest a shop's exports (CSV or Parquet) into DuckDB's `raw` schema, losing nothing.

Every row read ends in exactly one place: its typed table (`raw.orders`, `raw.customers`, `raw.events`) or
`raw.quarantine` with a reason, the file and the line it came from (for a Parquet file, its row number; the header
of a CSV is line 1). Files already ingested (same content hash) are skipped, so re-ingesting adds nothing.
Parsing and validation run as DuckDB SQL, so a 20M-row export ingests in seconds, not minutes.

With a pseudonym key, customer ids are replaced at the door by a keyed hash (the same id gets the same pseudonym in
every file and table; without the key nobody can map it back), also inside quarantined records; a quarantined line
that could not be parsed is withheld instead, since it may hold a raw id: its file and line say where to look.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from ml.simulator import EVENT_TYPES, ORDER_STATUSES

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
WITHHELD_LINE = "(withheld: the raw line may hold a customer id; see the file at this line)"


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
    try:
        # parse and validate in temporary tables (their rowid is the file order only outside a transaction)
        n_rejected = _load_text(con, path)
        present = {r[0] for r in con.execute("DESCRIBE _incoming").fetchall()} - {"_row"}
        source = {c: mapping.get(c, c) for c in spec.required + spec.optional}
        missing = [source[c] for c in spec.required if source[c] not in present]
        if missing:
            raise IngestError(f"{path}: missing required column(s) {', '.join(missing)} "
                              f"(found: {', '.join(sorted(present)) or 'none'})")
        n_parsed = con.execute("SELECT count(*) FROM _incoming").fetchone()[0]
        if n_parsed + n_rejected == 0:
            raise IngestError(f"{path}: the file has a header but no rows")
        record = _validate(con, table, spec, source, present, timestamp_format, pseudonym_key)
        con.execute("BEGIN")  # the file lands whole or not at all
        try:
            accepted = _store(con, table, spec, path.name)
            quarantined = _quarantine(con, table, path, n_parsed, record, pseudonym_key is not None)
            report = FileReport(table, path.name, n_parsed + n_rejected, accepted, quarantined)
            con.execute("INSERT INTO raw.ingested_files VALUES (?, ?, ?, ?, ?, ?, current_timestamp)",
                        [table, path.name, digest, report.rows_read, report.rows_accepted, report.rows_quarantined])
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
    try:
        con.execute(f"""INSERT INTO raw.quarantine SELECT ?, ?, l.line, c.reason, {record}
            FROM _checked c JOIN _row_lines l USING (_row) JOIN _incoming i USING (_row)""", [table, path.name])
        text = "?" if withhold_lines else "r.csv_line"
        con.execute(f"""INSERT INTO raw.quarantine
            SELECT ?, ?, l.line, 'unparseable line: ' || r.error_message, {text}
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


def _ts_expr(col: str, fmt: str | None) -> str:
    if fmt:  # the user's format first; ISO too, which is how a Parquet file's own timestamps read as text
        return f"coalesce(try_strptime({col}, '{_sql_str(fmt)}'), try_cast({col} AS TIMESTAMP))"
    return f"try_cast({col} AS TIMESTAMP)"


def _validate(con, table, spec: TableSpec, source, present, timestamp_format, pseudonym_key) -> str:
    """Typed columns plus `reason` (NULL when the row is valid) into `_checked`; returns the SQL of a quarantined
    row's record."""
    def raw(col: str) -> str:
        src = source[col]
        return f"nullif(trim({_ident(src)}), '')" if src in present else "NULL"

    typed, reasons = {}, []
    cid = raw("customer_id")
    if pseudonym_key:
        # keyed hash: the same customer keeps one id across files; the key never leaves the environment
        key = _sql_str(pseudonym_key)
        typed["customer_id"] = (f"CASE WHEN {cid} IS NULL THEN NULL "
                                f"ELSE 'P' || left(sha256('{key}' || ':' || {cid}), 24) END")
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
        # an export without order ids: a stable id from the row's content (the pseudonym, never the raw id)
        typed["order_id"] = (f"coalesce({raw('order_id')}, 'L' || md5(concat_ws('|', {typed['customer_id']}, "
                             f"{raw('order_ts')}, {raw('amount')})))")
        reasons += [
            f"WHEN {typed['amount']} < 0 THEN 'negative amount: ' || {raw('amount')}",
            f"WHEN {typed['amount']} > {MAX_AMOUNT} THEN 'absurd amount: ' || {raw('amount')}",
            f"WHEN {typed['quantity']} < 0 THEN 'negative quantity: ' || {raw('quantity')}",
            f"WHEN {typed['status']} NOT IN {ORDER_STATUSES} THEN 'unknown status: ' || {raw('status')}",
        ]
    if table == "events":
        typed["event_type"] = f"lower({raw('event_type')})"
        reasons.append(f"WHEN {typed['event_type']} NOT IN {tuple(EVENT_TYPES)} "
                       f"THEN 'unknown event_type: ' || {raw('event_type')}")
    cols = ", ".join(f"{expr} AS {col}" for col, expr in typed.items())
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _checked AS
        SELECT {cols}, CASE {' '.join(reasons)} ELSE NULL END AS reason, _row FROM _incoming""")
    # a quarantined row's record as the export had it (_incoming i), except the customer id: its pseudonym (_checked c)
    fields = {c: f"i.{_ident(c)}" for c in sorted(present)}
    if pseudonym_key and source["customer_id"] in fields:
        fields[source["customer_id"]] = "c.customer_id"
    return "to_json(struct_pack(" + ", ".join(f"{_ident(c)} := {e}" for c, e in fields.items()) + "))::VARCHAR"


def _store(con, table: str, spec: TableSpec, file_name: str) -> int:
    cols = ", ".join(spec.types)
    return con.execute(f"INSERT INTO raw.{table} ({cols}, _file) SELECT {cols}, ? FROM _checked WHERE reason IS NULL",
                       [file_name]).fetchone()[0]


def pseudonym_key_from_env() -> str | None:
    key = os.environ.get("CLV_PSEUDONYM_KEY")
    return key or None
