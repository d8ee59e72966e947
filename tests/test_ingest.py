"""Ingestion of a shop's exports: every row kept or quarantined with a reason, clear one-line errors, idempotence."""
from __future__ import annotations

import json
from decimal import Decimal

import duckdb
import pandas as pd
import pytest

from ml.data.accounting import CENT
from ml.data.dirt import ORDER_FAULTS, write_dirty_exports
from ml.data.ingest import WITHHELD_LINE, IngestError, OrderOptions, ingest_folder, pending_files
from ml.data.simulator import simulate_shop
from tests.file_counts import csv_counts, stored_counts


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
    # rows, counted without ingestion's code: what was written (the clean shop and each injected fault), the file's
    # records by the csv module, the stored rows by SQL. read = kept + quarantined, and each of them is true
    written = {"orders": len(shop.orders) + sum(injected[fault] for fault in ORDER_FAULTS),
               "events": len(shop.events) + injected["unknown_event_type"], "customers": len(shop.customers)}
    stored = {table: stored_counts(con, table, f"{table}.csv") for table in written}
    for table, n in written.items():
        report = reports[table]
        assert csv_counts(tmp_path / f"{table}.csv").rows == n, table
        assert (report.rows_read, report.rows_accepted, report.rows_quarantined) == (
            n, stored[table]["kept"], stored[table]["quarantined"]), table
        assert stored[table]["kept"] + stored[table]["quarantined"] == n, table
    orders = reports["orders"]
    assert stored["orders"]["kept"] == len(shop.orders)  # every clean row, and nothing else
    assert count(con, "SELECT count(*) FROM raw.orders") == len(shop.orders)
    # one fixed code per cause, each counted exactly
    expected = {}
    for fault, code in ORDER_FAULTS.items():
        expected[code] = expected.get(code, 0) + injected[fault]
    assert orders.reasons == expected
    got = dict(con.execute("SELECT reason, count(*) FROM raw.quarantine WHERE table_name = 'orders' GROUP BY 1")
               .fetchall())
    assert got == expected
    assert reports["events"].reasons == {"unknown_event_type": injected["unknown_event_type"]}
    assert count(con, "SELECT count(*) FROM raw.quarantine WHERE record IS NULL OR record = ''") == 0
    # money: kept is the clean shop's own total (to the cent); read is every amount of the file that reads as a
    # number (summed from the file by the csv module), kept and quarantined are what the warehouse holds (SQL)
    clean_total = Decimal(str(round(float(shop.orders["amount"].sum()), 2)))
    assert orders.amount_kept.quantize(CENT) == clean_total
    in_file = csv_counts(tmp_path / "orders.csv", "amount").amount
    assert orders.amount_read == in_file
    assert (orders.amount_kept, orders.amount_quarantined) == (
        stored["orders"]["amount_kept"], stored["orders"]["amount_quarantined"])
    assert stored["orders"]["amount_kept"] + stored["orders"]["amount_quarantined"] == in_file
    assert orders.sales_kept - orders.refunds_kept == orders.amount_kept
    assert orders.refunds_kept.quantize(CENT) == Decimal(str(round(-float(
        shop.orders.loc[shop.orders["amount"] < 0, "amount"].sum()), 2)))
    assert count(con, "SELECT count(*) FROM raw.orders WHERE order_ts > now()") == 0


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
        if reason == "unparseable_line":  # the raw line, as DuckDB could decode it
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
    assert (report.rows_read, report.rows_accepted, report.rows_quarantined) == (6, 4, 2)  # -5 is a refund
    lines = {r[0]: r[1:] for r in con.execute("SELECT line, reason, field, value FROM raw.quarantine").fetchall()}
    assert lines[8] == ("unparseable_timestamp", "order_ts", "not a date")
    assert lines[7][0] == "unparseable_line" and set(lines) == {7, 8}
    assert con.execute("SELECT category FROM raw.orders WHERE customer_id = 'b'").fetchone()[0] == "two\r\nlines"


def test_parquet_rows_are_numbered_and_native_timestamps_pass_a_text_format(tmp_path, con):
    pd.DataFrame({
        "Client": ["a", None, "c", "d"],
        "When": pd.to_datetime(["2025-01-01 10:00", "2025-01-02 00:00", "2025-01-03 00:00", "2025-01-04 00:00"]),
        "Total": [10.0, 11.0, -1.0, 12.0],
    }).to_parquet(tmp_path / "orders.parquet", index=False)
    reports = ingest_folder(con, tmp_path, columns={"orders": {"customer_id": "Client", "order_ts": "When",
                                                               "amount": "Total"}}, timestamp_format="%d/%m/%Y")
    assert (reports[0].rows_accepted, reports[0].rows_quarantined) == (3, 1)  # -1.0 is a refund line, kept
    assert con.execute("SELECT line, reason, field, value, amount FROM raw.quarantine").fetchall() == [
        (2, "missing_customer_id", "customer_id", None, Decimal("11"))]
    assert con.execute("SELECT amount, status FROM raw.orders WHERE customer_id = 'c'").fetchone() == (-1.0, "returned")
    assert str(con.execute("SELECT min(order_ts) FROM raw.orders").fetchone()[0]) == "2025-01-01 10:00:00"


def test_pseudonymized_ids_never_reach_the_quarantine(tmp_path, shop, con):
    write_dirty_exports(shop, tmp_path)
    ingest_folder(con, tmp_path, pseudonym_key="k")
    quarantine = con.execute("SELECT reason, record FROM raw.quarantine").df()
    raw_ids = set(shop.customers["customer_id"])
    for record in quarantine["record"]:
        assert not any(i in record for i in raw_ids if i in record), record
    withheld = quarantine[quarantine["reason"] == "unparseable_line"]
    assert len(withheld) and (withheld["record"] == WITHHELD_LINE).all()
    parsed = quarantine[quarantine["reason"] != "unparseable_line"]
    ids = parsed["record"].map(lambda r: json.loads(r)["customer_id"]).dropna()
    assert len(ids) and ids.str.match(r"^P[0-9a-f]{24}$").all()


# --- order lines, refunds, money ------------------------------------------------------------------------------

LINE_COLUMNS = {"orders": {"order_id": "InvoiceNo", "customer_id": "CustomerID", "order_ts": "InvoiceDate",
                           "quantity": "Quantity", "unit_price": "UnitPrice"}}


def test_a_line_level_export_with_cancellations_accounts_for_every_cent(tmp_path, con):
    """Online-Retail-shaped lines: many lines per invoice, C-prefixed cancellation invoices with negative
    quantities, an exact duplicate line, an invoice naming two customers, a line without a customer."""
    rows = [  # InvoiceNo, StockCode (not mapped), CustomerID, InvoiceDate, Quantity, UnitPrice
        ("536365", "85123A", "17850", "2010-12-01 08:26", 6, 2.55),    # 15.30
        ("536365", "71053", "17850", "2010-12-01 08:26", 6, 3.39),     # 20.34
        ("536365", "71053", "17850", "2010-12-01 08:26", 6, 3.39),     # exact duplicate of the line above
        ("536365", "84406B", "17850", "2010-12-01 08:26", 6, 3.39),    # 20.34: another product, not a duplicate
        ("536366", "22633", "17850", "2010-12-01 08:28", 6, 1.85),     # 11.10
        ("C536379", "D", "17850", "2010-12-01 09:41", -1, 27.50),      # a cancellation invoice: -27.50
        ("536380", "22728", "12583", "2010-12-01 09:45", 24, 0.85),    # 20.40
        ("536381", "22726", "12583", "2010-12-01 09:45", 2, 4.25),     # 8.50, conflicting: ...
        ("536381", "22727", "13047", "2010-12-01 09:46", 1, 4.25),     # ... the invoice names another customer
        ("536382", "22086", "", "2010-12-01 10:00", 3, 1.25),          # no customer id (3.75)
    ]
    pd.DataFrame(rows, columns=["InvoiceNo", "StockCode", "CustomerID", "InvoiceDate", "Quantity",
                                "UnitPrice"]).to_csv(tmp_path / "orders.csv", index=False)
    [r] = ingest_folder(con, tmp_path, columns=LINE_COLUMNS, options=OrderOptions(cancellation_prefix="C"))
    assert (r.rows_read, r.rows_accepted, r.rows_quarantined) == (10, 6, 4)
    assert r.reasons == {"missing_customer_id": 1, "duplicate_row": 1, "conflicting_customer": 2}
    # by hand: kept = 15.30 + 20.34 + 20.34 + 11.10 + 20.40 - 27.50; quarantined = 20.34 + 8.50 + 4.25 + 3.75
    assert (r.sales_kept, r.refunds_kept, r.amount_kept) == (Decimal("87.48"), Decimal("27.50"), Decimal("59.98"))
    assert r.amount_quarantined == Decimal("36.84") and r.amount_read == Decimal("96.82")
    assert con.execute("SELECT amount, status FROM raw.orders WHERE order_id = 'C536379'").fetchone() == (
        -27.5, "cancelled")
    held = con.execute("SELECT line, reason, value FROM raw.quarantine ORDER BY line").fetchall()
    assert held == [(4, "duplicate_row", "536365"), (9, "conflicting_customer", "536381"),
                    (10, "conflicting_customer", "536381"), (11, "missing_customer_id", None)]


def test_a_second_file_repeating_lines_adds_no_money_and_conflicts_across_files(tmp_path, con):
    first = pd.DataFrame({"order_id": ["o1", "o1"], "customer_id": ["a", "a"],
                          "order_ts": ["2025-01-01 10:00", "2025-01-01 10:00"], "amount": [10.0, 5.0]})
    first.to_csv(tmp_path / "orders_1.csv", index=False)
    ingest_folder(con, tmp_path)
    # an overlapping re-export: the same two lines, one new line, and o1 claimed by another customer
    second = pd.concat([first, pd.DataFrame({"order_id": ["o2", "o1"], "customer_id": ["b", "z"],
                                             "order_ts": ["2025-01-02 10:00", "2025-01-01 10:00"],
                                             "amount": [7.0, 1.0]})])
    second.to_csv(tmp_path / "orders_2.csv", index=False)
    [_, r] = ingest_folder(con, tmp_path)
    assert r.reasons == {"duplicate_row": 2, "conflicting_customer": 1}
    assert (r.amount_kept, r.amount_quarantined) == (Decimal(7), Decimal(16))
    assert count(con, "SELECT sum(amount) FROM raw.orders") == 22.0


def test_refund_statuses_and_negative_lines_become_negative_refund_lines(tmp_path, con):
    pd.DataFrame({
        "order_id": ["o1", "o1", "o2", "o3", "o4"], "customer_id": ["a", "a", "a", "b", "b"],
        "order_ts": ["2025-01-01", "2025-01-05", "2025-01-06", "2025-01-07", "2025-01-08"],
        "amount": [30.0, 10.0, -4.0, 12.0, 12.0], "status": ["paid", "Refunded", None, "completed", "canceled"],
    }).to_csv(tmp_path / "orders.csv", index=False)
    [r] = ingest_folder(con, tmp_path)
    assert r.rows_quarantined == 0
    got = con.execute("SELECT order_id, amount, status FROM raw.orders ORDER BY order_ts").fetchall()
    assert got == [("o1", 30.0, "completed"), ("o1", -10.0, "returned"), ("o2", -4.0, "returned"),
                   ("o3", 12.0, "completed"), ("o4", -12.0, "cancelled")]
    assert (r.sales_kept, r.refunds_kept) == (Decimal(42), Decimal(26))


def test_time_zone_offsets_are_converted_never_dropped(tmp_path, con):
    pd.DataFrame({"customer_id": ["a", "b", "c", "d"],
                  "order_ts": ["2024-12-31T23:30:00-08:00", "2024-12-31T23:30:00+02:00", "2024-12-31 23:30:00",
                               "2025-01-01T07:30:00Z"],
                  "amount": [1, 2, 3, 4]}).to_csv(tmp_path / "orders.csv", index=False)
    ingest_folder(con, tmp_path)
    got = dict(con.execute("SELECT customer_id, strftime(order_ts, '%Y-%m-%d %H:%M') FROM raw.orders").fetchall())
    assert got == {"a": "2025-01-01 07:30", "b": "2024-12-31 21:30", "c": "2024-12-31 23:30", "d": "2025-01-01 07:30"}
    with duckdb.connect() as other:  # the configured zone: offsets convert to it, naive times are taken in it
        ingest_folder(other, tmp_path, options=OrderOptions(timezone="America/New_York"))
        got = dict(other.execute("SELECT customer_id, strftime(order_ts, '%Y-%m-%d %H:%M') FROM raw.orders")
                   .fetchall())
        assert got == {"a": "2025-01-01 02:30", "b": "2024-12-31 16:30", "c": "2024-12-31 23:30",
                       "d": "2025-01-01 02:30"}
    with pytest.raises(IngestError, match="'Mars/Olympus' is not a time zone"):
        ingest_folder(duckdb.connect(), tmp_path, options=OrderOptions(timezone="Mars/Olympus"))


def test_an_export_without_an_amount_needs_quantity_and_unit_price(tmp_path, con):
    (tmp_path / "orders.csv").write_text("customer_id,order_ts,unit_price\na,2025-01-01,3\n")
    with pytest.raises(IngestError, match=r"missing required column\(s\) quantity"):
        ingest_folder(con, tmp_path)
