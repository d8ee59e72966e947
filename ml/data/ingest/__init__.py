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
from ml.data.ingest.files import discover, file_digest, file_lines
from ml.data.ingest.load import ingest_file, ingest_folder, pending_files, pseudonym_key_from_env
from ml.data.ingest.schema import (REASONS, SPECS, STATUSES, TABLES, WITHHELD_LINE, FileReport, IngestError,
                                   OrderOptions, ensure_raw_schema)

__all__ = ["REASONS", "SPECS", "STATUSES", "TABLES", "WITHHELD_LINE", "FileReport", "IngestError", "OrderOptions",
           "discover", "ensure_raw_schema", "file_digest", "file_lines", "ingest_file", "ingest_folder",
           "pending_files", "pseudonym_key_from_env"]
