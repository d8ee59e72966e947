"""The monitoring story, end to end through real Dagster, dbt, torch, Evidently and a BentoML server on loopback.

One shop (engagement drops from December) is trained at its 2025-10-01 cutoff and served; a backfill rescores the
weekly cutoffs of November and December. Each is scored and monitored under its own partition key; rescoring
trains nothing; the served snapshot moves to the newest cutoff; at 2025-12-31 the October scores have matured and
are judged; the drift there makes the sensor ask for retraining at that cutoff, the retrain promotes a new
champion, and /predict reports its version without a restart.
"""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from ml import registry
from ml.data.simulator import simulate_shop
from orchestration.jobs import rescore_job, retrain_job
from orchestration.sensors.drift import retrain_on_drift_sensor
from serving import store
from tests.scenario import materialize, metadata, shop_env
from tests.serving_api import running_api

# weekly cutoffs (Wednesdays, tests/clv_test.yaml): trained at the first, then a backfill of later ones
TRAINED_AT = "2025-10-01"
RESCORED = ["2025-11-05", "2025-12-03", "2025-12-31"]  # 2025-12-31 matures the scores of 2025-10-01 (H = 90)
PREDICTION = ["predicted_value", "p_return", "value_p10", "value_p50", "value_p90"]


def story_env(home, folder):
    return shop_env(home, source={"kind": "files", "path": str(folder)},
                    training={"fast": True, "search_budget_seconds": 0, "promotion_margin": 0.0})


def served_answer(api, customer_id: str) -> dict:
    response = api.post("/predict", json={"customer_ids": [customer_id]})
    assert response.status_code == 200, response.text
    return response.json()[0]


def answers_as_scored(answer: dict, scored: dict) -> bool:
    """The API's answer is this customer_scores row: the same numbers (to float noise) and lifecycle stage."""
    import pandas as pd

    return all(answer[c] == (None if pd.isna(scored[c]) else pytest.approx(float(scored[c]), rel=1e-6, abs=1e-9))
               for c in PREDICTION) and answer["lifecycle_stage"] == scored["lifecycle_stage"]


def trained_model_id(version: str) -> str:
    """The registry version of the trained model inside a published BentoML version."""
    return store.load(f"{store.MODEL_NAME}:{version}").model.info["model_id"]


def scoring_cutoff(version: str) -> str:
    """The cutoff of the snapshot a published version serves."""
    import bentoml

    return bentoml.models.get(f"{store.MODEL_NAME}:{version}").info.labels["scoring_cutoff"]


def selection(job) -> dg.AssetSelection:
    return job.selection


@pytest.mark.timeout(1500)
def test_drift_story(tmp_path):
    from orchestration.assets import modeling, monitoring, packaging

    folder = tmp_path / "exports"
    simulate_shop(n_customers=4000, start="2024-01-01", end="2025-12-31", seed=11,
                  drift_kind="engagement", drift_from="2025-12-01").write(folder)
    home = tmp_path / "platform"
    with dg.instance_for_test() as instance, story_env(home, folder) as cfg:
        # the first cutoff: the whole flow; the champion is served
        materialize(home, cfg, instance, partition=TRAINED_AT)
        first_champion = registry.champion_version()  # the registry lives under this shop's CLV_HOME
        assert first_champion is not None

        with running_api("serving.service:ClvService", Path(os.environ["BENTOML_HOME"]), tmp_path / "api.log") as api:
            customer = _any_customer(home)
            before = served_answer(api, customer)
            v1 = before["model_version"]
            assert trained_model_id(v1) == first_champion
            assert answers_as_scored(before, _scored(home, customer, TRAINED_AT))

            # a backfill of later cutoffs, rescoring only: each is scored, monitored and kept by its own key
            for cutoff in RESCORED:
                materialize(home, cfg, instance, selection=selection(rescore_job), partition=cutoff)
            drift = {c: metadata(instance, monitoring.feature_drift_report, c)["drift_share"] for c in RESCORED}
            assert drift["2025-11-05"] < cfg["drift_threshold"] <= drift["2025-12-31"], drift
            assert _cutoffs_scored(home) == [TRAINED_AT, *RESCORED]
            assert registry.champion_version() == first_champion  # rescoring trains nothing
            assert metadata(instance, packaging.served_model, RESCORED[-1])["published"]

            # the served snapshot moved to the newest cutoff, by the same model: the answer is now that cutoff's
            # score, which the answer from before (of 2025-10-01) is not
            moved = _wait_for(api, customer, lambda v: scoring_cutoff(v) == RESCORED[-1])
            v2 = moved["model_version"]
            assert scoring_cutoff(v2) == RESCORED[-1] and v2 != v1
            assert trained_model_id(v2) == first_champion
            rescored = _scored(home, customer, RESCORED[-1])
            assert rescored["model_version"] == first_champion
            assert answers_as_scored(moved, rescored) and not answers_as_scored(before, rescored), (before, moved)

            # the scores of 2025-10-01 have matured at 2025-12-31: judged against what the customers did
            performance = metadata(instance, monitoring.model_performance, RESCORED[-1])
            assert performance["status"] == "measured" and performance["matured_cutoff"] == TRAINED_AT, performance
            assert 0.3 < performance["matured_normalized_gini"] < 1 and performance["gini_decay"] is not None
            decay_check = _check(instance, "gini_decay_critical", RESCORED[-1])
            assert decay_check == (performance["gini_decay"] < performance["decay_threshold"])

            # the drifted cutoff: the sensor asks for retraining at it, once; the retrain promotes a new champion
            context = dg.build_sensor_context(instance=instance)
            request = retrain_on_drift_sensor(context)
            assert isinstance(request, dg.RunRequest), request
            assert request.tags["clv/trigger"] in ("drift", "decay") and request.partition_key == RESCORED[-1]
            result = materialize(home, cfg, instance, selection=selection(retrain_job), tags=request.tags,
                                 partition=request.partition_key)
            assert result.success
            decision = metadata(instance, modeling.clv_model, RESCORED[-1])
            new_champion = registry.champion_version()
            assert decision["promoted"] and new_champion != first_champion, decision

            # the running API serves the new champion without a restart: its score of the customer, which the
            # previous champion's answer is not
            retrained = _wait_for(api, customer, lambda v: trained_model_id(v) == new_champion)
            assert trained_model_id(retrained["model_version"]) == new_champion
            assert scoring_cutoff(retrained["model_version"]) == RESCORED[-1]
            by_new_champion = _scored(home, customer, RESCORED[-1])
            assert by_new_champion["model_version"] == new_champion
            assert answers_as_scored(retrained, by_new_champion) and not answers_as_scored(moved, by_new_champion), (
                moved, retrained)


def _cutoffs_scored(home) -> list[str]:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT DISTINCT cutoff_date FROM main.customer_scores ORDER BY 1").fetchall()
    return [str(r[0])[:10] for r in rows]


def _check(instance, name: str, partition: str) -> bool:
    """Whether the latest evaluation of a monitoring check passed (the check is on model_performance)."""
    key = dg.AssetCheckKey(dg.AssetKey("model_performance"), name)
    record = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)[0]
    return record.event.dagster_event.event_specific_data.passed


def _scored(home, customer: str, cutoff: str) -> dict:
    """The customer's row of customer_scores (the Dagster asset's table) at a cutoff."""
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT * FROM main.customer_scores WHERE customer_id = ? AND cutoff_date = ?",
                           [customer, date.fromisoformat(cutoff)]).df()
    assert len(rows) == 1, (customer, cutoff, rows)
    return rows.iloc[0].to_dict()


def _any_customer(home) -> str:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT min(customer_id) FROM main.customer_scores").fetchone()[0]


def _wait_for(api, customer: str, wanted, seconds: float = 90) -> dict:
    """The API's answer once `wanted(its model_version)` holds (or the last one seen after `seconds`)."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        answer = served_answer(api, customer)
        if wanted(answer["model_version"]) or time.monotonic() > deadline:
            return answer
        time.sleep(1)
