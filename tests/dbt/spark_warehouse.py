"""The tiny shop's marts built on Spark (dbt target `spark`): raw frames -> DuckDB raw.* -> Parquet -> dbt on Spark."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml.data import spark_engine
from tests.dbt.conftest import run_dbt_build, write_raw

SORT_KEYS = ("customer_id", "cutoff_date", "role", "horizon_days", "activity_date", "week_index")


def sorted_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in one order whatever engine wrote them (neither guarantees any)."""
    keys = [c for c in SORT_KEYS if c in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True) if keys else frame


@dataclass
class SparkWarehouse:
    """A Spark build: its tables under spark_dir, and the DuckDB file whose raw tables it read."""

    spark_dir: Path
    db_path: Path
    dbt_output: str

    def table(self, name: str) -> pd.DataFrame:
        return sorted_rows(spark_engine.read_table(self.spark_dir, name))


def build_spark_warehouse(root: Path, name: str, frames: dict[str, pd.DataFrame], dbt_vars: dict) -> SparkWarehouse:
    work_dir = root / name
    work_dir.mkdir(parents=True)
    db_path = work_dir / "ingested.duckdb"  # ingestion's side: raw.* in DuckDB, exported for Spark
    spark_dir = work_dir / "spark"
    write_raw(db_path, frames)
    spark_engine.export_raw(db_path, spark_dir)
    result = run_dbt_build(db_path, work_dir, dbt_vars, target=spark_engine.TARGET,
                           extra_env=spark_engine.spark_env(spark_dir))
    return SparkWarehouse(spark_dir, db_path, result.stdout)
