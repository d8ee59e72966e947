"""The Dagster step that trains the zoo (backtest_model) with training.processes: 2 runs each deep training as a
torchrun subprocess of the step, through the same path as everything else (ml/models/training.py)."""
from __future__ import annotations

import dagster as dg
import duckdb

from ml.models.zoo import load_model
from orchestration.assets import modeling
from orchestration.assets.evaluation import backtest_dir
from tests.scenario import materialize, metadata, shop_env


def test_the_backtest_step_trains_the_deep_model_on_two_processes(tmp_path):
    # an instance of its own: the suite's shared one must keep the clean shop's materializations as the latest
    with dg.instance_for_test() as instance, shop_env(
            tmp_path, training={"processes": 2, "models": ["linear", "deep_ziln"], "backtest_folds": 1}) as cfg:
        result = materialize(tmp_path, cfg, instance,
                             selection=dg.AssetSelection.assets(modeling.backtest_model).upstream())
        assert result.success
        partition = result.get_asset_materialization_events()[-1].partition
        assert metadata(instance, modeling.backtest_model, partition)["training_processes"] == 2
        deep = load_model(backtest_dir(partition) / "deep_ziln")
        assert deep.info["distributed"]["processes"] == 2 and deep.info["distributed"]["backend"] == "gloo"
        assert deep.info["epochs"] >= 1
        # no member of this zoo reads event streams: dbt built none, every customer still has features
        assert metadata(instance, modeling.training_set, partition)["event_stream_length"] == 0
        with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM customer_events").fetchone()[0] == 0
            assert con.execute("SELECT count(*) FROM customer_features WHERE cutoff_date = ?",
                               [partition]).fetchone()[0] > 0
