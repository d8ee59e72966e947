"""Fixtures for the dbt layer: a tiny raw shop in DuckDB, built with `dbt build` once per scenario.

Each scenario writes `raw.orders/customers/events` from pandas frames into its own DuckDB file under a temporary
folder, then runs `dbt build` (a subprocess, like Dagster does) with its own --target-path and --log-path, so
nothing is written to dbt_project/ and scenarios never share state.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

RAW_DDL = {
    "orders": "order_id VARCHAR, customer_id VARCHAR, order_ts TIMESTAMP, amount DOUBLE, quantity INTEGER, "
    "unit_price DOUBLE, status VARCHAR, category VARCHAR",
    "customers": "customer_id VARCHAR, signup_ts TIMESTAMP, region VARCHAR, device VARCHAR, channel VARCHAR",
    "events": "customer_id VARCHAR, event_ts TIMESTAMP, event_type VARCHAR",
}

# Cutoffs for these vars: score 2025-03-31, holdout 2025-03-01, train 2025-01-30.
BASE_VARS = {
    "as_of": "2025-03-31",
    "horizon_days": 30,
    "sequence_weeks": 4,
    "max_events": 3,  # A has more events than that before each cutoff: the cap is exercised
    "n_train_windows": 1,
    "has_events": True,
    "has_customers": True,
    "new_within_days": 30,
    "at_risk_after_days": 45,
    "churn_after_days": 120,
    "loyal_min_orders": 3,
}


def dbt_executable() -> str:
    """The dbt next to the running interpreter (the project's virtualenv), else the one on PATH."""
    candidate = Path(sys.executable).parent / "dbt"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("dbt")
    if found is None:
        pytest.skip("dbt is not installed")
    return found


def write_raw(db_path: Path, frames: dict[str, pd.DataFrame]) -> None:
    """Create schema raw with the three source tables (typed), filled from `frames` (missing = empty)."""
    with duckdb.connect(str(db_path)) as con:
        con.execute("create schema if not exists raw")
        for table, ddl in RAW_DDL.items():
            con.execute(f"create or replace table raw.{table} ({ddl})")
            frame = frames.get(table)
            if frame is not None and len(frame):
                con.register("frame", frame)
                columns = ", ".join(part.split()[0] for part in ddl.split(", "))
                con.execute(f"insert into raw.{table} select {columns} from frame")
                con.unregister("frame")


def run_dbt_build(db_path: Path, work_dir: Path, dbt_vars: dict, target: str | None = None,
                  extra_env: dict | None = None, extra_args: list[str] = ()) -> subprocess.CompletedProcess:
    """`dbt build` in work_dir (where a Spark session leaves its derby.log), on the profile's default target
    (DuckDB) unless `target` names another; `extra_args` (a target, a selector) go on its command line."""
    env = {**os.environ, "CLV_DUCKDB_PATH": str(db_path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1",
           **(extra_env or {})}
    command = [
        dbt_executable(), "build",
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(work_dir / "target"),
        "--log-path", str(work_dir / "logs"),
        "--vars", json.dumps(dbt_vars),
    ] + (["--target", target] if target else []) + list(extra_args)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=work_dir)
    if result.returncode != 0:
        pytest.fail(f"dbt build failed ({result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
    return result


@dataclass
class Warehouse:
    """A built DuckDB warehouse; `table(name)` reads a model of schema main as a DataFrame."""

    path: Path
    dbt_output: str

    def table(self, name: str, where: str = "true") -> pd.DataFrame:
        with duckdb.connect(str(self.path), read_only=True) as con:
            frame = con.execute(f"select * from main.{name} where {where}").df()
        keys = [c for c in ("customer_id", "cutoff_date", "activity_date", "week_index", "position")
                if c in frame.columns]
        return frame.sort_values(keys).reset_index(drop=True) if keys else frame


def build_warehouse(root: Path, name: str, frames: dict[str, pd.DataFrame], dbt_vars: dict) -> Warehouse:
    work_dir = root / name
    work_dir.mkdir(parents=True)
    db_path = work_dir / "warehouse.duckdb"
    write_raw(db_path, frames)
    result = run_dbt_build(db_path, work_dir, dbt_vars)
    return Warehouse(db_path, result.stdout)


def _ts(values: list[str]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype="object"))


def orders_frame(rows: list[tuple]) -> pd.DataFrame:
    """Order lines as ingestion stores them: refund and cancellation lines negative, no exact duplicates."""
    frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "order_ts", "amount", "quantity", "status", "category"])
    frame["order_ts"] = _ts(frame["order_ts"].tolist())
    frame["unit_price"] = None
    return frame


def customers_frame(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "signup_ts", "region", "device", "channel"])
    frame["signup_ts"] = _ts(frame["signup_ts"].tolist())
    return frame


def events_frame(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "event_ts", "event_type"])
    frame["event_ts"] = _ts(frame["event_ts"].tolist())
    return frame


def base_frames() -> dict[str, pd.DataFrame]:
    """The tiny shop the value tests are computed by hand from (dates are 2024/2025).

    A  profile + orders + events; an order of two lines, a partial return, an order cancelled in full, an
       order after as_of. E  three orders ten days apart (at risk by rhythm). C  orders only, long ago (churned).
    F  orders only, no profile (active). B  profile + events, never orders (potential). D  signs up after the holdout.
    """
    orders = orders_frame([
        ("a1", "A", "2025-01-05 10:00:00", 60.0, 1, "completed", "x"),    # two lines of one order
        ("a1", "A", "2025-01-05 10:00:00", 40.0, 1, "completed", "x"),
        ("a1", "A", "2025-01-10 12:00:00", -40.0, 2, "returned", "x"),    # partial refund, counts from 2025-01-10
        ("a2", "A", "2025-01-05 18:00:00", 50.0, 1, "completed", "y"),
        ("a3", "A", "2025-02-03 14:00:00", 30.0, 1, "completed", "y"),
        ("a4", "A", "2025-02-15 12:00:00", 999.0, 1, "completed", "y"),   # cancelled in full the same day
        ("a4", "A", "2025-02-15 12:05:00", -999.0, 1, "cancelled", "y"),
        ("a5", "A", "2025-03-10 11:00:00", 80.0, 1, "completed", "x"),
        ("a6", "A", "2025-04-05 10:00:00", 70.0, 1, "completed", "x"),    # after as_of: never read
        ("e1", "E", "2024-12-10 12:00:00", 20.0, 1, "completed", "x"),
        ("e2", "E", "2024-12-20 12:00:00", 20.0, 1, "completed", "x"),
        ("e3", "E", "2024-12-30 12:00:00", 20.0, 1, "completed", "x"),
        ("c1", "C", "2024-06-01 09:00:00", 10.0, 1, "completed", "z"),
        ("c2", "C", "2024-07-01 09:00:00", 15.0, 1, "completed", "z"),
        ("f1", "F", "2025-01-02 20:00:00", 40.0, 1, "completed", "z"),
        ("f2", "F", "2025-02-15 20:00:00", 60.0, 3, "completed", "z"),
        ("d1", "D", "2025-03-20 08:00:00", 25.0, 1, "completed", "x"),
    ])
    customers = customers_frame([
        ("A", "2024-12-01 09:00:00", "EU", "mobile", "ads"),
        ("A", "2025-01-15 09:00:00", "XX", "tablet", "tv"),   # later duplicate profile: ignored
        ("B", "2025-01-20 09:00:00", "US", "desktop", "organic"),
        ("D", "2025-03-15 09:00:00", "APAC", "mobile", "email"),
        ("E", "2024-12-01 09:00:00", "EU", "desktop", "email"),
    ])
    events = events_frame([
        ("A", "2025-01-04 09:00:00", "view"),
        ("A", "2025-01-04 09:00:00", "view"),          # exact duplicate
        ("A", "2025-01-04 09:05:00", "search"),
        ("A", "2025-01-04 09:10:00", "ADD_TO_CART"),   # lower-cased
        ("A", "2025-02-10 10:00:00", "view"),
        ("A", "2025-02-10 10:05:00", "add_to_cart"),
        ("A", "2025-02-10 10:10:00", "review"),
        ("A", "2025-02-25 10:00:00", "like"),
        ("A", "2025-02-25 10:01:00", "share"),
        ("A", "2025-02-25 10:02:00", "purchase"),
        ("A", "2025-03-05 10:00:00", "view"),
        ("B", "2025-01-22 10:00:00", "view"),
        ("B", "2025-02-12 10:00:00", "purchase"),      # a week with only a purchase event is not a sequence row
        ("B", "2025-02-26 10:00:00", "add_to_cart"),
        ("B", "2025-03-20 10:00:00", "view"),
    ])
    return {"orders": orders, "customers": customers, "events": events}


def after_holdout_changes(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Modify and add only rows dated after the holdout cutoff 2025-03-01 (the train cutoff is 2025-01-30)."""
    orders = frames["orders"].copy()
    orders.loc[orders["order_id"] == "a5", "amount"] = 500.0  # an order after the cutoff changes value
    orders = pd.concat([orders, orders_frame([
        ("a5", "A", "2025-03-20 11:00:00", -100.0, 1, "returned", "x"),
        ("f2", "F", "2025-03-10 20:00:00", -60.0, 3, "returned", "z"),  # a refund after the cutoff of an order before it
        ("c3", "C", "2025-03-02 09:00:00", 49.5, 3, "completed", "z"),  # two lines of one order
        ("c3", "C", "2025-03-02 09:05:00", 49.5, 2, "completed", "z"),
        ("e4", "E", "2025-03-29 12:00:00", 1e6, 1, "completed", "x"),   # a huge outlier moves the outlier fences
        ("g1", "G", "2025-03-06 12:00:00", 45.0, 1, "completed", "x"),  # a customer first seen after the cutoff
    ])], ignore_index=True)
    customers = pd.concat([frames["customers"], customers_frame([
        ("G", "2025-03-05 09:00:00", "EU", "mobile", "ads"),
    ])], ignore_index=True)
    events = pd.concat([frames["events"], events_frame([
        ("A", "2025-03-02 00:00:00", "view"),
        ("B", "2025-03-03 10:00:00", "add_to_cart"),
        ("F", "2025-03-04 10:00:00", "search"),
        ("G", "2025-03-04 10:00:00", "view"),
    ])], ignore_index=True)
    return {"orders": orders, "customers": customers, "events": events}


@pytest.fixture(scope="session")
def dbt_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dbt")


@pytest.fixture(scope="session")
def warehouse(dbt_root) -> Warehouse:
    return build_warehouse(dbt_root, "base", base_frames(), BASE_VARS)


@pytest.fixture(scope="session")
def warehouse_after_changes(dbt_root) -> Warehouse:
    return build_warehouse(dbt_root, "changed", after_holdout_changes(base_frames()), BASE_VARS)


@pytest.fixture(scope="session")
def warehouse_rebuilt_after_changes(dbt_root, warehouse) -> Warehouse:
    """The base warehouse copied, its raw tables re-ingested with the changes, and `dbt build` run again on it."""
    work_dir = dbt_root / "rebuilt"
    work_dir.mkdir()
    db_path = work_dir / "warehouse.duckdb"
    shutil.copyfile(warehouse.path, db_path)
    write_raw(db_path, after_holdout_changes(base_frames()))
    result = run_dbt_build(db_path, work_dir, BASE_VARS)
    return Warehouse(db_path, result.stdout)


@pytest.fixture(scope="session")
def warehouse_orders_only(dbt_root) -> Warehouse:
    frames = {"orders": base_frames()["orders"]}  # customers and events stay empty
    return build_warehouse(dbt_root, "orders_only", frames, {**BASE_VARS, "has_events": False, "has_customers": False})
