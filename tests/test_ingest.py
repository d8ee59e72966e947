"""Ingestion of a shop's exports: every row kept or quarantined with a reason, clear one-line errors, idempotence."""
from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from ml.dirt import EVENT_FAULTS, ORDER_FAULTS, write_dirty_exports
from ml.ingest import WITHHELD_LINE, IngestError, ingest_folder, pending_files
from ml.simulator import simulate_shop


@pytest.fixture(scope="module")
def shop():
    return simulate_shop(n_customers=800, start="2024-06-01", end="2025-06-30", seed=5)


@pytest.fixture
def con():
    with duckdb.connect() as c:
        yield c


def count(con, sql: str) -> int:
    return con.execute(sql).fetchone()[0]


def test_dirty_exports_lose_nothing(tmp_path, shop, con):
    injected = write_dirty_exports(shop, tmp_path)
    reports = {r.table: r for r in ingest_folder(con, tmp_path)}
    for r in reports.values():
        assert r.rows_read == r.rows_accepted + r.rows_quarantined
    orders = reports["orders"]
    clean_orders = len(shop.orders)
    assert orders.rows_accepted == clean_orders + injected["duplicate_orders"]
    assert orders.rows_quarantined == sum(injected[f] for f in ORDER_FAULTS)
    reasons = con.execute("SELECT table_name, reason FROM raw.quarantine").df()
    for fault, reason in {**ORDER_FAULTS, **EVENT_FAULTS}.items():
        table = "events" if fault in EVENT_FAULTS else "orders"
        hits = reasons[(reasons.table_name == table) & reasons.reason.str.startswith(reason)]
        assert len(hits) >= injected[fault], (fault, reason)
    assert count(con, "SELECT count(*) FROM raw.quarantine WHERE record IS NULL OR record = ''") == 0
    assert reports["events"].rows_quarantined == injected["unknown_event_type"]
    assert count(con, "SELECT count(*) FROM raw.orders WHERE amount < 0 OR order_ts > now()") == 0


def test_reingesting_the_same_file_adds_nothing_and_new_files_are_picked_up(tmp_path, shop, con):
    shop.orders.iloc[:1000].to_csv(tmp_path / "orders_2025-01.csv", index=False)
    first = ingest_folder(con, tmp_path)
    assert first[0].rows_accepted == 1000
    again = ingest_folder(con, tmp_path)
    assert again[0].skipped and count(con, "SELECT count(*) FROM raw.orders") == 1000
    shop.orders.iloc[1000:1500].to_csv(tmp_path / "orders_2025-02.csv", index=False)
    assert [p.name for _, p in pending_files(con, tmp_path)] == ["orders_2025-02.csv"]
    ingest_folder(con, tmp_path)
    assert count(con, "SELECT count(*) FROM raw.orders") == 1500
    assert pending_files(con, tmp_path) == []


def test_user_export_with_other_column_names_and_date_format(tmp_path, con):
    pd.DataFrame({
        "CustomerID": ["a", "b", "a"], "InvoiceDate": ["31/01/1997", "01/02/1997", "15/03/1997"],
        "Revenue": ["10.5", "3", "7.25"],
    }).to_csv(tmp_path / "orders.csv", index=False)
    ingest_folder(con, tmp_path, columns={"orders": {"customer_id": "CustomerID", "order_ts": "InvoiceDate",
                                                     "amount": "Revenue"}}, timestamp_format="%d/%m/%Y")
    rows = con.execute("SELECT customer_id, order_ts::DATE, amount, status FROM raw.orders ORDER BY 2").fetchall()
    assert [r[0] for r in rows] == ["a", "b", "a"]
    assert str(rows[0][1]) == "1997-01-31" and rows[2][2] == 7.25 and rows[0][3] == "completed"
    # empty tables for what the user does not have: dbt always finds its sources
    assert count(con, "SELECT count(*) FROM raw.events") == 0


def test_iso_dates_and_timestamps_both_parse(tmp_path, con):
    pd.DataFrame({"customer_id": ["a", "b"], "order_ts": ["1997-01-31", "2025-03-01T10:11:12"],
                  "amount": [1, 2]}).to_csv(tmp_path / "orders.csv", index=False)
    assert ingest_folder(con, tmp_path)[0].rows_accepted == 2


@pytest.mark.parametrize("content, message", [
    ("customer_id,amount\nC1,3\n", "missing required column(s) order_ts"),
    ("", "the file is empty"),
    ("customer_id,order_ts,amount\n", "has a header but no rows"),
])
def test_bad_files_fail_with_one_clear_line(tmp_path, con, content, message):
    (tmp_path / "orders.csv").write_text(content)
    with pytest.raises(IngestError) as err:
        ingest_folder(con, tmp_path)
    text = str(err.value)
    assert "orders.csv" in text and message in text and "\n" not in text


def test_unreadable_parquet_fails_with_one_clear_line(tmp_path, con):
    (tmp_path / "orders.parquet").write_bytes(b"this is not parquet at all")
    with pytest.raises(IngestError, match=r"orders.parquet: cannot be read"):
        ingest_folder(con, tmp_path)
    # nothing half-written
    assert count(con, "SELECT count(*) FROM raw.orders") == 0


def test_missing_orders_file_is_a_clear_error(tmp_path, con):
    (tmp_path / "events.csv").write_text("customer_id,event_ts,event_type\nc,2025-01-01,view\n")
    with pytest.raises(IngestError, match="no orders file"):
        ingest_folder(con, tmp_path)


def test_pseudonymized_ids_are_keyed_and_stable(tmp_path, shop, con):
    shop.orders.iloc[:200].to_csv(tmp_path / "orders.csv", index=False)
    shop.events.iloc[:200].to_csv(tmp_path / "events.csv", index=False)
    ingest_folder(con, tmp_path, pseudonym_key="secret-1")
    ids = set(con.execute("SELECT customer_id FROM raw.orders").df()["customer_id"])
    assert not ids & set(shop.orders["customer_id"])
    assert all(i.startswith("P") and len(i) == 25 for i in ids)
    # the same customer maps to the same pseudonym across tables
    raw_both = set(shop.orders.iloc[:200]["customer_id"]) & set(shop.events.iloc[:200]["customer_id"])
    if raw_both:
        joined = count(con, "SELECT count(DISTINCT o.customer_id) FROM raw.orders o JOIN raw.events e USING (customer_id)")
        assert joined == len(raw_both)
    with duckdb.connect() as other:
        (tmp_path / "events.csv").unlink()
        ingest_folder(other, tmp_path, pseudonym_key="secret-2")
        assert not ids & set(other.execute("SELECT customer_id FROM raw.orders").df()["customer_id"])


def file_line(path, number: int) -> bytes:
    return path.read_bytes().split(b"\n")[number - 1]


def test_quarantined_rows_name_their_true_line_in_the_file(tmp_path, shop, con):
    """Bad rows and unparseable lines are scattered through the file: each quarantine row's `line` is the line of
    the file that holds it (header = line 1), and rows read = the file's data lines."""
    write_dirty_exports(shop, tmp_path)
    reports = {r.table: r for r in ingest_folder(con, tmp_path)}
    path = tmp_path / "orders.csv"
    assert reports["orders"].rows_read == path.read_bytes().count(b"\n") - 1
    rows = con.execute("SELECT line, reason, record FROM raw.quarantine WHERE table_name = 'orders'").fetchall()
    assert len(rows) == reports["orders"].rows_quarantined
    for line, reason, record in rows:
        text = file_line(path, line)
        if reason.startswith("unparseable line"):  # the raw line, as DuckDB could decode it
            assert text.split(b",")[0] == record.split(",")[0].encode() and record.startswith("BAD"), (line, record)
        else:
            assert text.startswith(json.loads(record)["order_id"].encode() + b","), (line, reason, record)


def test_line_numbers_stay_true_with_blank_lines_and_quoted_line_breaks(tmp_path, con):
    (tmp_path / "orders.csv").write_bytes(
        b"customer_id,order_ts,amount,category\r\n"
        b"a,2025-01-01,10,home\r\n"
        b"\r\n"                                             # a blank line: no record
        b'b,2025-01-02,11,"two\r\nlines"\r\n'              # one record on lines 4-5
        b"c,2025-01-03,-5,home\r\n"                         # line 6: negative amount
        b"d,2025-01-04,12,home,extra\r\n"                   # line 7: too many columns
        b"e,not a date,13,home\r\n"                         # line 8: unparseable timestamp
        b"f,2025-01-05,14,home"                             # line 9, no final line break
    )
    report = ingest_folder(con, tmp_path)[0]
    assert (report.rows_read, report.rows_accepted, report.rows_quarantined) == (6, 3, 3)
    lines = dict(con.execute("SELECT line, split_part(reason, ':', 1) FROM raw.quarantine").fetchall())
    assert lines == {6: "negative amount", 7: "unparseable line", 8: "unparseable order_ts"}
    assert con.execute("SELECT category FROM raw.orders WHERE customer_id = 'b'").fetchone()[0] == "two\r\nlines"


def test_parquet_rows_are_numbered_and_native_timestamps_pass_a_text_format(tmp_path, con):
    pd.DataFrame({
        "Client": ["a", None, "c", "d"],
        "When": pd.to_datetime(["2025-01-01 10:00", "2025-01-02 00:00", "2025-01-03 00:00", "2025-01-04 00:00"]),
        "Total": [10.0, 11.0, -1.0, 12.0],
    }).to_parquet(tmp_path / "orders.parquet", index=False)
    reports = ingest_folder(con, tmp_path, columns={"orders": {"customer_id": "Client", "order_ts": "When",
                                                               "amount": "Total"}}, timestamp_format="%d/%m/%Y")
    assert (reports[0].rows_accepted, reports[0].rows_quarantined) == (2, 2)
    assert con.execute("SELECT line, reason FROM raw.quarantine ORDER BY line").fetchall() == [
        (2, "missing customer_id"), (3, "negative amount: -1.0")]
    assert str(con.execute("SELECT min(order_ts) FROM raw.orders").fetchone()[0]) == "2025-01-01 10:00:00"


def test_pseudonymized_ids_never_reach_the_quarantine(tmp_path, shop, con):
    write_dirty_exports(shop, tmp_path)
    ingest_folder(con, tmp_path, pseudonym_key="k")
    quarantine = con.execute("SELECT reason, record FROM raw.quarantine").df()
    raw_ids = set(shop.customers["customer_id"])
    for record in quarantine["record"]:
        assert not any(i in record for i in raw_ids if i in record), record
    withheld = quarantine[quarantine["reason"].str.startswith("unparseable line")]
    assert len(withheld) and (withheld["record"] == WITHHELD_LINE).all()
    parsed = quarantine[~quarantine["reason"].str.startswith("unparseable line")]
    ids = parsed["record"].map(lambda r: json.loads(r)["customer_id"]).dropna()
    assert len(ids) and ids.str.match(r"^P[0-9a-f]{24}$").all()
