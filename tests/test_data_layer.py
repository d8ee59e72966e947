"""The data layer through the real Dagster graph: a user's orders-only export end to end, incremental pickup by the
incoming-files sensor, a dirty simulated shop that shows the quarantine, and bad files that fail with one line."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from ml.data.dirt import ORDER_FAULTS
from ml.data.simulator import simulate_shop
from orchestration.assets import ingestion, modeling
from orchestration.sensors.incoming import SETTLE_SECONDS, incoming_files_sensor, new_data_sensor
from tests.file_counts import csv_counts, stored_counts
from tests.scenario import materialize, metadata, resources, shop_env

# our column name -> the user's
COLUMNS = {"order_id": "InvoiceNo", "customer_id": "CustomerID", "order_ts": "InvoiceDate", "amount": "Revenue",
           "quantity": "Qty", "status": "State"}
TIMESTAMP_FORMAT = "%d/%m/%Y %H:%M"
INGESTION = dg.AssetSelection.assets(ingestion.shop_exports, ingestion.raw_tables)
UP_TO_SCORES = dg.AssetSelection.assets(modeling.customer_scores).upstream()
INTERACTION = ["views_total", "views_30d", "searches_30d", "carts_total", "carts_30d", "cart_to_purchase",
               "reviews_total", "likes_total", "shares_total", "events_30d", "events_90d", "days_since_last_event"]


def user_export(orders: pd.DataFrame) -> pd.DataFrame:
    out = orders[list(COLUMNS)].rename(columns=COLUMNS)
    out["InvoiceDate"] = orders["order_ts"].dt.strftime(TIMESTAMP_FORMAT)
    return out


def settled(path):
    """Date a file back, as if it had been copied in a while ago (the sensor waits for files to settle)."""
    past = time.time() - SETTLE_SECONDS - 5
    os.utime(path, (past, past))
    return path


def export(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False)
    return settled(path)


def files_source(folder) -> dict:
    return {"kind": "files", "path": str(folder), "columns": {"orders": COLUMNS}, "timestamp_format": TIMESTAMP_FORMAT}


def sensor(home, cfg, instance, cursor=None):
    # as the daemon does: the warehouse resource is opened for the evaluation (a sensor takes no workspace lock)
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources(home, cfg)) as context:
        return incoming_files_sensor(context), context.cursor


@pytest.fixture(scope="module")
def user_orders():
    """A shop's orders as a user would export them: their column names, a day-first format, no customers, no
    events, in two files, with three broken rows."""
    orders = simulate_shop(n_customers=3000, start="2024-01-01", end="2025-12-31", seed=17).orders
    return user_export(orders)


def test_an_orders_only_export_runs_end_to_end_and_new_files_are_picked_up(tmp_path, user_orders):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    early = user_orders["InvoiceDate"].str[6:10] == "2024"
    first = pd.concat([user_orders[early], pd.DataFrame({
        "InvoiceNo": ["X1", "X2", "X3"], "CustomerID": ["", "C9", "C9"], "InvoiceDate": ["01/02/2025 10:00"] * 3,
        "Revenue": ["5", "-3", "abc"], "Qty": [1, 1, 1], "State": ["completed"] * 3})])
    export(first, incoming / "orders_2024.csv")
    later = user_orders[~early]
    held_back = later.iloc[-200:]  # arrives after the first run
    export(later.iloc[:-200], incoming / "orders_2025.csv")

    with dg.instance_for_test() as instance, shop_env(tmp_path / "home", source=files_source(incoming)) as cfg:
        home = tmp_path / "home"
        request, cursor = sensor(home, cfg, instance)
        assert isinstance(request, dg.RunRequest) and request.tags["clv/files"] == "orders_2024.csv, orders_2025.csv"

        result = materialize(home, cfg, instance, selection=UP_TO_SCORES)
        assert result.success
        checks = result.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
        md = _asset(instance, "shop/orders")
        assert md["rows_read"] == len(user_orders) - 200 + 3 == md["rows_accepted"] + md["rows_quarantined"]
        # -3 is a refund (data); a row without a customer and one without a number are set aside, with their money
        assert md["rows_quarantined"] == 2 and "non_numeric_amount" in md["quarantine_reasons"]
        assert "missing_customer_id" in md["quarantine_reasons"] and md["money_balances"]
        revenue = pd.to_numeric(pd.concat([user_orders[early], later.iloc[:-200]])["Revenue"]).sum()
        assert round(md["amount_kept"], 2) == round(revenue - 3, 2) and md["amount_quarantined"] == 5.0
        # the staging observation: nothing lost between raw.orders and the staged orders and refunds
        observed = instance.fetch_observations(dg.AssetKey("stg_shop__orders"), limit=1).records[0]
        money = {k: v.value for k, v in observed.asset_observation.metadata.items()}
        assert money["money_reconciles"] and round(money["raw_amount"], 2) == round(md["amount_kept"], 2)
        assert _asset(instance, "shop/events")["table_rows"] == _asset(instance, "shop/customers")["table_rows"] == 0

        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            features = con.execute("SELECT * FROM customer_features").df()
            sequences = con.execute("SELECT * FROM customer_sequences").df()
            scores = con.execute("SELECT * FROM customer_scores").df()
            n_scored = con.execute("SELECT count(*) FROM customer_features WHERE cutoff_date = ?",
                                   [date.fromisoformat(md["latest_cutoff"])]).fetchone()[0]
            last_day = con.execute("SELECT max(order_ts)::DATE FROM raw.orders").fetchone()[0]
        # as_of: latest scores the newest weekly cutoff the data covers (the last orders are held back)
        newest = date.fromisoformat(md["latest_cutoff"])
        assert newest <= last_day < newest + timedelta(days=7)
        assert {str(c)[:10] for c in scores["cutoff_date"]} == {md["latest_cutoff"]}
        # what an orders-only shop cannot know is absent (NULL), not a zero that claims "no activity"
        assert features[INTERACTION + ["region", "device", "channel"]].isna().all().all()
        assert sequences[["views", "searches", "carts", "engagements"]].isna().all().all()
        assert features["n_orders"].notna().all() and features["n_orders"].gt(0).all()
        assert len(scores) == n_scored > 2000 and scores["customer_id"].is_unique
        assert scores["predicted_value"].notna().all() and scores["p_return"].between(0, 1).all()

        # the run ingested and scored: the new-data sensor has nothing to add
        watch = dg.build_sensor_context(instance=instance)
        assert "was scored after the last ingestion" in new_data_sensor(watch).skip_message

        # the same files again: nothing to do, nothing added
        skip, cursor = sensor(home, cfg, instance, cursor)
        assert isinstance(skip, dg.SkipReason) and "no new content" in skip.skip_message
        materialize(home, cfg, instance, selection=INGESTION)
        again = _asset(instance, "shop/orders")
        assert (again["files_ingested"], again["files_skipped_already_ingested"]) == (0, 2)
        assert again["table_rows"] == md["table_rows"]

        # a new file: the sensor asks for a run (keyed by its content), which adds exactly its rows
        held_back.to_csv(incoming / "orders_2025-12.csv", index=False)
        waiting, cursor = sensor(home, cfg, instance, cursor)
        assert isinstance(waiting, dg.SkipReason) and "settle" in waiting.skip_message
        settled(incoming / "orders_2025-12.csv")
        request, cursor = sensor(home, cfg, instance, cursor)
        assert isinstance(request, dg.RunRequest) and request.tags["clv/files"] == "orders_2025-12.csv"
        materialize(home, cfg, instance, selection=INGESTION)
        assert _asset(instance, "shop/orders")["table_rows"] == md["table_rows"] + 200
        skip, _ = sensor(home, cfg, instance, cursor)
        assert isinstance(skip, dg.SkipReason)
        # the held-back orders complete the last week: the new-data sensor rescores the newest cutoff
        rescore = new_data_sensor(dg.build_sensor_context(instance=instance, cursor=watch.cursor))
        assert isinstance(rescore, dg.RunRequest) and rescore.job_name == "rescore", rescore
        assert rescore.partition_key == _asset(instance, "shop/orders")["latest_cutoff"] == "2025-12-31"


def _asset(instance, key: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_the_sensor_keys_runs_by_content_and_skips_with_a_reason(tmp_path, instance, user_orders):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    home = tmp_path / "home"
    with shop_env(home) as cfg:
        skip, _ = sensor(home, cfg, instance)
        assert isinstance(skip, dg.SkipReason) and "no incoming folder" in skip.skip_message
    with shop_env(home, source=files_source(incoming)) as cfg:
        skip, _ = sensor(home, cfg, instance)
        assert isinstance(skip, dg.SkipReason) and "no orders file" in skip.skip_message
        export(user_orders.iloc[:500], incoming / "orders_a.csv")
        first, cursor = sensor(home, cfg, instance)
        assert first.run_key.startswith("files-")
        # a touched file, or a copy under another name, is the same content: the same run key (which Dagster runs
        # once), and with the cursor nothing to request at all
        settled(incoming / "orders_a.csv")
        (incoming / "orders_copy.csv").write_bytes((incoming / "orders_a.csv").read_bytes())
        settled(incoming / "orders_copy.csv")
        assert sensor(home, cfg, instance)[0].run_key == first.run_key
        handled, cursor = sensor(home, cfg, instance, cursor)
        assert isinstance(handled, dg.SkipReason) and "all ingested or requested" in handled.skip_message
        export(user_orders.iloc[500:600], incoming / "orders_b.csv")
        other, cursor = sensor(home, cfg, instance, cursor)
        assert other.run_key != first.run_key and other.tags["clv/files"] == "orders_b.csv"
        export(user_orders.iloc[600:700], incoming / "orders_c.csv")

        # while a run writes the warehouse (another process holds DuckDB's lock), the sensor waits
        duckdb.connect(str(home / "warehouse.duckdb")).close()
        writer = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', "
             "flush=True); time.sleep(60)", str(home / "warehouse.duckdb")], stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout.readline().strip() == "ready"
            busy, _ = sensor(home, cfg, instance, cursor)
            assert isinstance(busy, dg.SkipReason) and "busy" in busy.skip_message
        finally:
            writer.kill()
            writer.wait()


def test_a_dirty_simulated_shop_shows_the_quarantine(tmp_path, instance):
    with shop_env(tmp_path, simulator={"n_customers": 600, "dirty": True}) as cfg:
        materialize(tmp_path, cfg, instance, selection=INGESTION)
        injected = metadata(instance, ingestion.shop_exports)["injected_faults"]
        assert "conflicting_customer" in injected and "non_utf8_bytes" in injected
        orders, events = _asset(instance, "shop/orders"), _asset(instance, "shop/events")
        folder = Path(metadata(instance, ingestion.shop_exports)["folder"])
        # read = kept + quarantined, each counted without ingestion's code: the files' records by the csv module,
        # the stored rows by SQL (one file per table here)
        with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
            stored = {table: stored_counts(con, table, f"{table}.csv") for table in ("orders", "events", "customers")}
            assert con.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0] == 67
        for table, counted in stored.items():
            md = _asset(instance, f"shop/{table}")
            in_file = csv_counts(folder / f"{table}.csv").rows
            assert (md["rows_read"], md["rows_accepted"], md["rows_quarantined"]) == (
                in_file, counted["kept"], counted["quarantined"]), table
            assert counted["kept"] + counted["quarantined"] == in_file, table
        # 8 order faults x 5, 20 duplicate lines, the 2 lines of a conflicting order id; 5 events
        assert orders["rows_quarantined"] == 62 and events["rows_quarantined"] == 5
        for reason in ORDER_FAULTS.values():
            assert f"| {reason} |" in orders["quarantine_reasons"], reason
        # money: read is every amount of the file that reads as a number (summed from the file), kept and
        # quarantined what the warehouse holds (SQL); the metadata are floats, so to the cent
        amount_read = csv_counts(folder / "orders.csv", "amount").amount
        money = stored["orders"]
        assert money["amount_kept"] + money["amount_quarantined"] == amount_read
        assert [orders["amount_read"], orders["amount_kept"], orders["amount_quarantined"]] == pytest.approx(
            [float(amount_read), float(money["amount_kept"]), float(money["amount_quarantined"])], rel=0, abs=0.01)
        assert orders["money_balances"]


@pytest.mark.parametrize("content, message", [
    ("CustomerID,InvoiceDate\nC1,01/02/2025 10:00\n", "missing required column(s) Revenue"),
    ("", "the file is empty"),
])
def test_a_bad_user_file_fails_the_run_with_one_line_naming_it(tmp_path, instance, content, message):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "orders.csv").write_text(content)
    with shop_env(tmp_path, source=files_source(incoming)) as cfg:
        from orchestration.definitions import defs

        result = dg.materialize(list(defs.assets), resources=resources(tmp_path, cfg), instance=instance,
                                selection=INGESTION, raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE][0]
    description = failure.step_failure_data.user_failure_data.description
    assert "orders.csv" in description and message in description and "\n" not in description


def test_pseudonymizing_without_a_key_stops_with_one_line(tmp_path, instance, monkeypatch):
    monkeypatch.delenv("CLV_PSEUDONYM_KEY", raising=False)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "orders.csv").write_text("CustomerID,InvoiceDate,Revenue\nC1,01/02/2025 10:00,3\n")
    with shop_env(tmp_path, source={**files_source(incoming), "pseudonymize": True}) as cfg:
        from orchestration.definitions import defs

        result = dg.materialize(list(defs.assets), resources=resources(tmp_path, cfg), instance=instance,
                                selection=INGESTION, raise_on_error=False)
    failure = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE][0]
    assert failure.step_failure_data.user_failure_data.description == (
        "clv.yaml: source.pseudonymize is true but $CLV_PSEUDONYM_KEY is not set")


def test_pseudonymized_user_ids_flow_through_the_graph(tmp_path, instance, monkeypatch, user_orders):
    monkeypatch.setenv("CLV_PSEUDONYM_KEY", "a-secret")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    user_orders.iloc[:3000].to_csv(incoming / "orders.csv", index=False)
    with shop_env(tmp_path, source={**files_source(incoming), "pseudonymize": True}) as cfg:
        materialize(tmp_path, cfg, instance, selection=INGESTION)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        ids = set(con.execute("SELECT DISTINCT customer_id FROM raw.orders").df()["customer_id"])
    assert len(ids) == user_orders.iloc[:3000]["CustomerID"].nunique()
    assert not ids & set(user_orders["CustomerID"]) and all(i.startswith("P") for i in ids)
