"""Ingesting a folder of exports: each new file parsed, validated and stored whole or not at all, its rows and money
accounted (read = kept + quarantined)."""
from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import numpy as np
import pyarrow as pa

from ml.data.ingest.files import discover, file_digest, file_lines, load_text
from ml.data.ingest.rules import flag_duplicates_and_conflicts, validate
from ml.data.ingest.schema import (MONEY, SPECS, TABLES, WITHHELD_LINE, FileReport, IngestError, OrderOptions,
                                   TableSpec, ensure_raw_schema)

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
        n_rejected = load_text(con, path)
        present = {r[0] for r in con.execute("DESCRIBE _incoming").fetchall()} - {"_row"}
        source = {c: mapping.get(c, c) for c in spec.required + spec.optional}
        _check_columns(path, table, spec, source, present)
        n_parsed = con.execute("SELECT count(*) FROM _incoming").fetchone()[0]
        if n_parsed + n_rejected == 0:
            raise IngestError(f"{path}: the file has a header but no rows")
        record = validate(con, table, spec, source, present, timestamp_format, pseudonym_key, options)
        if table == "orders":
            flag_duplicates_and_conflicts(con)
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


def _store(con, table: str, spec: TableSpec, file_name: str) -> int:
    cols = ", ".join(list(spec.types) + (["_line_key"] if table == "orders" else []))
    return con.execute(f"INSERT INTO raw.{table} ({cols}, _file) SELECT {cols}, ? FROM _checked WHERE reason IS NULL",
                       [file_name]).fetchone()[0]


def pseudonym_key_from_env() -> str | None:
    key = os.environ.get("CLV_PSEUDONYM_KEY")
    return key or None
