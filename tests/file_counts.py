"""Counts of an export file and of what ingestion stored from it, computed without ml.data.ingest: the file read with
Python's csv module, the warehouse with SQL. Tests check ingestion's FileReport (and its Dagster metadata) against
these, not against its own arithmetic."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path


@dataclass(frozen=True)
class FileCounts:
    rows: int  # data records (the header excluded)
    amount: Decimal  # sum of the amounts that read as numbers, on the records a CSV parser accepts


def csv_counts(path: Path, amount_column: str | None = None) -> FileCounts:
    """The file's data records, counted by the csv module; with `amount_column`, the sum of its numeric values over
    the records that are well formed (valid UTF-8, as many fields as the header): those are the rows whose money
    ingestion can read (a line no parser accepts has no amount to account)."""
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    records = [r for r in csv.reader(io.StringIO(text, newline="")) if r]  # a blank line is no record
    header, data = records[0], records[1:]
    amount = Decimal(0)
    if amount_column is not None:
        at = header.index(amount_column)
        for record in data:
            if len(record) != len(header) or any("\udc80" <= ch <= "\udcff" for field in record for ch in field):
                continue
            try:
                value = Decimal(record[at].strip())
            except InvalidOperation:
                continue
            if value.is_finite():
                amount += value
    return FileCounts(len(data), amount)


def stored_counts(con, table: str, file_name: str) -> dict:
    """What the warehouse holds from one file: rows kept in raw.<table>, rows in raw.quarantine, and (orders) their
    money, by SQL over the stored rows."""
    kept = con.execute(f"SELECT count(*) FROM raw.{table} WHERE _file = ?", [file_name]).fetchone()[0]
    held = con.execute("SELECT count(*) FROM raw.quarantine WHERE table_name = ? AND _file = ?",
                       [table, file_name]).fetchone()[0]
    out = {"kept": kept, "quarantined": held}
    if table == "orders":
        out["amount_kept"] = con.execute(
            "SELECT coalesce(sum(CAST(amount AS DECIMAL(38, 6))), 0) FROM raw.orders WHERE _file = ?",
            [file_name]).fetchone()[0]
        out["amount_quarantined"] = con.execute(
            "SELECT coalesce(sum(amount), 0) FROM raw.quarantine WHERE table_name = 'orders' AND _file = ?",
            [file_name]).fetchone()[0]
    return out
