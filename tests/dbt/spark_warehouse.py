"""The tiny shop's marts built on Spark (engine `spark`, wrapped as ml/data/build.py wraps it): raw frames -> DuckDB
raw.* -> Parquet -> dbt on Spark -> the marts read back into the DuckDB file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml.data import build, spark_engine
from tests.dbt.conftest import run_dbt_build, write_raw

# The dbt tests are left out of this build: it is compared with the DuckDB build of the same rows, mart by mart, and
# the tests' SQL on Spark runs in tests/test_engine_spark.py (a whole Dagster build). On a local Spark each test is a
# job of ~0.5 s, half of this build's time.
MODELS_ONLY = ["--exclude", "resource_type:test", "resource_type:unit_test"]

SORT_KEYS = ("customer_id", "cutoff_date", "role", "horizon_days", "activity_date", "week_index", "position")


def sorted_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in one order whatever engine wrote them (neither guarantees any)."""
    keys = [c for c in SORT_KEYS if c in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True) if keys else frame


@dataclass
class SparkWarehouse:
    """A Spark build: its tables under spark_dir, and the DuckDB file whose raw tables it read and where its marts
    were read back."""

    spark_dir: Path
    db_path: Path

    def table(self, name: str) -> pd.DataFrame:
        return sorted_rows(spark_engine.read_table(self.spark_dir, name))


def build_spark_warehouse(root: Path, name: str, frames: dict[str, pd.DataFrame], dbt_vars: dict) -> SparkWarehouse:
    work_dir = root / name
    work_dir.mkdir(parents=True)
    db_path = work_dir / "ingested.duckdb"  # ingestion's side: raw.* in DuckDB, exported for Spark
    write_raw(db_path, frames)
    with build.on_engine(db_path, "spark", work_dir / "spark") as (args, env):  # as ml/data/build.dbt_build does
        run_dbt_build(db_path, work_dir, dbt_vars, extra_env=env, extra_args=args + MODELS_ONLY)
    return SparkWarehouse(work_dir / "spark", db_path)
