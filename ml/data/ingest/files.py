"""Reading an export file: which files a folder holds, their content hash, their text loaded into DuckDB, and the
line in the file each record came from (so a quarantined row names the line a person can open)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ml.data.ingest.schema import FILE_SUFFIXES, TABLES, IngestError

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


def load_text(con, path: Path) -> int:
    """Load the file as text columns into `_incoming` with `_row` (1 = first data row), unparseable lines into
    `_rejects`; return the count of unparseable lines."""
    con.execute("CREATE OR REPLACE TEMP TABLE _rejects (line BIGINT, error_message VARCHAR, csv_line VARCHAR)")
    if path.suffix.lower() == ".parquet":
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _parsed AS
            SELECT * FROM read_parquet('{sql_str(path)}', file_row_number = true)""")
        cols = [r[0] for r in con.execute("DESCRIBE _parsed").fetchall() if r[0] != "file_row_number"]
        casts = ", ".join(f"CAST({ident(c)} AS VARCHAR) AS {ident(c)}" for c in cols)
        con.execute(f"""CREATE OR REPLACE TEMP VIEW _incoming AS
            SELECT {casts}, file_row_number + 1 AS _row FROM _parsed""")
        return 0
    for leftover in ("_errors", "_scan"):  # DuckDB appends to reject tables: start each file afresh
        con.execute(f"DROP TABLE IF EXISTS {leftover}")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _parsed AS
        SELECT * FROM read_csv('{sql_str(path)}', all_varchar = true, header = true, store_rejects = true,
                               rejects_scan = '_scan', rejects_table = '_errors')""")
    # one row per unparseable line (a line can break several rules), numbered in the file (header = line 1)
    con.execute("""CREATE OR REPLACE TEMP TABLE _rejects AS
        SELECT DISTINCT ON (line) line, error_message, csv_line FROM _errors ORDER BY line""")
    # rowid follows the file's order (DuckDB preserves insertion order): the parsed rows' ordinal
    con.execute("CREATE OR REPLACE TEMP VIEW _incoming AS SELECT *, rowid + 1 AS _row FROM _parsed")
    return con.execute("SELECT count(*) FROM _rejects").fetchone()[0]


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


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_str(value) -> str:
    return str(value).replace("'", "''")
