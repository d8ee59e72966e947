"""The data layer outside Dagster, for `clv predict` and the benchmarks: the same ingestion (ml/data/ingest.py) and the
same dbt project (a `dbt build` subprocess with the run's vars, as dagster-dbt runs it), in one workspace folder."""
from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Iterator

import duckdb

from ml.data import ingest, spark_engine
from ml import settings
from ml.data.plan import PlannedWindow, WindowPlan, plan_windows


class BuildError(Exception):
    """dbt could not build the warehouse; the message is one line and names the log."""


def window_plan(con: duckdb.DuckDBPyConnection, as_of: date, horizon_days: int, folds: int,
                matured: date | None = None) -> WindowPlan:
    """The run's windows (ml/data/plan.py), from how far back the shop's orders in raw.orders go. `matured`: the
    earlier cutoff whose scores are judged at this one; its labels are computed too (role 'matured')."""
    first = con.execute("SELECT min(order_ts)::DATE FROM raw.orders WHERE order_ts::DATE <= ?", [as_of]).fetchone()[0]
    plan = plan_windows(as_of, horizon_days, first, folds)
    if matured is not None and first is not None and matured >= first:
        plan.windows.append(PlannedWindow(matured, "matured", horizon_days))
    return plan


def last_order_day(con: duckdb.DuckDBPyConnection) -> date | None:
    """The day of the newest order in raw.orders (None before anything is ingested)."""
    try:
        return con.execute("SELECT max(order_ts)::DATE FROM raw.orders").fetchone()[0]
    except duckdb.CatalogException:
        return None


def dbt_vars(as_of: str, horizon_days: int, sequence_weeks: int, has_customers: bool, has_events: bool,
             plan: WindowPlan, max_events: int = settings.PlatformConfig.max_events) -> dict:
    """The vars of one dbt run (Dagster's and `clv predict`'s): the same models compute every window."""
    return {"as_of": as_of, "horizon_days": horizon_days, "sequence_weeks": sequence_weeks,
            "max_events": max_events, "has_customers": has_customers, "has_events": has_events,
            "windows": plan.to_vars()}


def ingest_exports(db_path: Path, folder: Path, columns: dict | None = None, timestamp_format: str | None = None,
                   options: ingest.OrderOptions | None = None):
    """Exports in `folder` -> raw tables of the DuckDB file; returns (file reports, has_customers, has_events)."""
    with duckdb.connect(str(db_path)) as con:
        reports = ingest.ingest_folder(con, folder, columns or {}, timestamp_format, options=options)
        has = {t: con.execute(f"SELECT count(*) > 0 FROM raw.{t}").fetchone()[0] for t in ("customers", "events")}
    return reports, bool(has["customers"]), bool(has["events"])


def die_with_parent() -> None:
    """In the child, before dbt (or torchrun, ml/models/distributed.py) starts: the kernel sends it SIGKILL when the
    run that started it dies, however it dies (Linux prctl PR_SET_PDEATHSIG), so a killed run does not leave dbt
    holding the warehouse."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the next run ends the leftovers (ml/lock.py)
        pass


@contextmanager
def on_engine(db_path: Path, engine: str, spark_dir: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    """Around one `dbt build` on `engine` (clv.yaml `engine`): yields the dbt arguments and environment it adds.
    DuckDB: nothing (dbt reads and writes the warehouse file itself). Spark: the raw tables exported to Parquet
    before, and once the build succeeded, its marts and staged orders read back into the DuckDB file, where the
    Python side reads them (ml/data/spark_engine.py). A failed build leaves the file's tables as they were."""
    if engine == "duckdb":
        yield [], {}
        return
    spark_engine.export_raw(db_path, spark_dir)
    yield ["--target", spark_engine.TARGET], spark_engine.spark_env(spark_dir)
    spark_engine.import_marts(db_path, spark_dir)


def dbt_build(db_path: Path, variables: dict, workdir: Path, engine: str = "duckdb") -> None:
    """`dbt build` of the project against `db_path` on `engine`; target, logs and Spark's files stay in `workdir`."""
    workdir = Path(workdir).resolve()
    env = {**os.environ, "CLV_DUCKDB_PATH": str(Path(db_path).resolve()), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "DO_NOT_TRACK": "1"}
    logs = workdir / "dbt_logs"
    command = [settings.dbt_executable(), "build", "--quiet", "--project-dir", str(settings.DBT_PROJECT_DIR),
               "--profiles-dir", str(settings.DBT_PROJECT_DIR), "--target-path", str(workdir / "dbt_target"),
               "--log-path", str(logs), "--vars", json.dumps(variables)]
    with on_engine(db_path, engine, workdir / "spark") as (args, engine_env):
        done = subprocess.run(command + args, env={**env, **engine_env}, capture_output=True, text=True,
                              preexec_fn=die_with_parent, cwd=workdir)
        _raise_for(done, logs)


def _raise_for(done: subprocess.CompletedProcess, logs: Path) -> None:
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stdout + "\n" + done.stderr).splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "no output")
        raise BuildError(f"dbt build failed: {first} (log: {logs / 'dbt.log'})")
