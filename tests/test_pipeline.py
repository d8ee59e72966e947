"""The whole asset graph on a tiny simulated shop: real dbt, torch, Evidently and the BentoML store."""
from __future__ import annotations

import duckdb
import dagster as dg
import numpy as np

from orchestration.assets import modeling, monitoring, packaging
from serving import scores
from orchestration.sensors.drift import retrain_on_drift_sensor
from tests.scenario import materialize, metadata, shop_env

UP_TO_DRIFT = dg.AssetSelection.assets(monitoring.feature_drift_report).upstream()


def test_every_asset_materializes_and_dbt_tests_pass(clean_shop, instance):
    _, _, result = clean_shop
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    for name in ("shop/orders", "shop/customers", "shop/events", "customer_features", "customer_labels",
                 "customer_lifecycle", "customer_sequences", "customer_events", "training_set", "backtest_model",
                 "model_evaluation", "clv_model", "customer_scores", "feature_drift_report", "served_model"):
        assert name in materialized, name
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    dbt_checks = [c for c in checks.values() if c.asset_key.to_user_string().startswith(("stg_", "int_", "customer_", "cutoffs"))]
    assert len(dbt_checks) > 50, "dbt tests should run as asset checks"
    # the test shop trains the transformer member: dbt built its streams at the shop's max_events
    assert metadata(instance, modeling.training_set)["event_stream_length"] == clean_shop[1]["max_events"] == 16
    assert all(c.passed for c in dbt_checks), [c.check_name for c in dbt_checks if not c.passed]
    # monitoring checks: a clean shop raises no error-level drift check; decay cannot be measured yet, and an
    # unmeasured check is not a pass
    assert checks["drift_share_critical"].passed
    decay = checks["gini_decay_critical"]
    assert not decay.passed and decay.severity == dg.AssetCheckSeverity.WARN and decay.metadata["measured"].value is False


def test_model_beats_historic_spend_rate_out_of_time(clean_shop, instance):
    md = metadata(instance, modeling.model_evaluation)
    assert md["model_normalized_gini"] > md["baseline_normalized_gini"] + 0.02, md
    # the simulator's truth bounds any model from above
    assert md["oracle_normalized_gini"] >= md["model_normalized_gini"] - 0.05


def test_every_customer_is_scored(clean_shop, instance):
    home, cfg, _ = clean_shop
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        n_features = con.execute(
            "SELECT count(*) FROM customer_features WHERE cutoff_date = DATE '2025-12-31'").fetchone()[0]
        scores = con.execute("SELECT * FROM customer_scores").df()
    assert len(scores) == n_features > 0
    assert scores["customer_id"].is_unique
    assert (scores["predicted_value"] >= 0).all() and scores["p_return"].between(0, 1).all()
    assert (scores["value_p10"] <= scores["value_p90"]).all()
    assert set(scores["lifecycle_stage"]) <= {"potential", "new", "active", "loyal", "at_risk", "churned"}


def test_served_model_is_in_the_bentoml_store(clean_shop, instance):
    from serving import store

    published = metadata(instance, packaging.served_model)
    tag = published["tag"]
    assert store.latest_tag() == tag
    served = store.load()
    assert len(served.snapshot) > 0
    # the version serves the answers customer_scores computed (not a second scoring of the whole snapshot)
    assert published["answers_from"] == "customer_scores" == store.answers_from(tag)
    home = clean_shop[0]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        table = con.execute("SELECT customer_id, predicted_value, reason_details FROM customer_scores "
                            "WHERE cutoff_date = ?", [served.snapshot.cutoff]).df().set_index("customer_id")
    stored = scores.read(served.path).set_index("customer_id")
    assert len(stored) == len(table) == len(served.snapshot)
    assert np.allclose(stored.loc[table.index, "predicted_value"], table["predicted_value"], rtol=1e-12)
    assert (stored.loc[table.index, "reasons"] == table["reason_details"]).all()


def test_clean_shop_does_not_drift_and_the_sensor_skips(clean_shop, instance):
    md = metadata(instance, monitoring.feature_drift_report)
    assert md["drift_share"] < md["drift_threshold"], md
    assert not md["drifted"]
    assert (clean_shop[0] / "reports" / "2025-12-31" / "feature_drift.html").stat().st_size > 10_000
    result = retrain_on_drift_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)
    assert "below threshold" in result.skip_message


def test_shifted_shop_drifts_and_the_sensor_requests_retraining(tmp_path, clean_shop):
    with dg.instance_for_test() as inst, shop_env(tmp_path, simulator={"drift_from": "2025-10-03",
                                                                      "drift_kind": "engagement"}) as cfg:
        materialize(tmp_path, cfg, inst, selection=UP_TO_DRIFT)
        md = metadata(inst, monitoring.feature_drift_report)
        assert md["drift_share"] >= md["drift_threshold"], md
        context = dg.build_sensor_context(instance=inst)
        request = retrain_on_drift_sensor(context)
        assert isinstance(request, dg.RunRequest)
        assert request.tags["clv/trigger"] == "drift" and "threshold" in request.tags["clv/reason"]
        # once per episode: the next evaluation, with the cursor the first one left, skips
        again = retrain_on_drift_sensor(dg.build_sensor_context(instance=inst, cursor=context.cursor))
        assert isinstance(again, dg.SkipReason)
