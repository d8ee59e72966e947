"""The monitoring story, end to end through real Dagster, dbt, torch, Evidently and a BentoML server on loopback.

Month 1: ingest, train, serve. Month 2: no drift, no retraining. Month 3: injected drift: the sensor fires,
retraining runs, the new champion is served, and /predict reports its version without a restart.
One shop is simulated through month 3 (engagement drops from December); each month the platform sees it up to
that month's end, as a user's export folder would grow.
"""
from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from ml import registry
from ml.simulator import simulate_shop
from orchestration.jobs import rescore_job, retrain_job
from orchestration.sensors.drift import retrain_on_drift_sensor
from serving import store
from tests.scenario import materialize, metadata, shop_env
from tests.serving_api import running_api

MONTHS = ["2025-10-31", "2025-11-30", "2025-12-31"]


def month_env(home, folder, as_of):
    return shop_env(home, as_of=as_of, source={"kind": "files", "path": str(folder)},
                    training={"fast": True, "search_budget_seconds": 0, "promotion_margin": 0.0})


def served_version(api, customer_id: str) -> str:
    response = api.post("/predict", json={"customer_ids": [customer_id]})
    assert response.status_code == 200, response.text
    return response.json()[0]["model_version"]


def trained_model_id(version: str) -> str:
    """The registry version of the trained model inside a published BentoML version."""
    return store.load(f"{store.MODEL_NAME}:{version}").model.info["model_id"]


def selection(job) -> dg.AssetSelection:
    return job.selection


@pytest.mark.timeout(1500)
def test_drift_story(tmp_path):
    from orchestration.assets import modeling, monitoring

    folder = tmp_path / "exports"
    simulate_shop(n_customers=4000, start="2024-01-01", end=MONTHS[-1], seed=11,
                  drift_kind="engagement", drift_from="2025-12-01").write(folder)
    home = tmp_path / "platform"
    with dg.instance_for_test() as instance:
        # month 1: the whole flow; the champion is served
        with month_env(home, folder, MONTHS[0]) as cfg:
            materialize(home, cfg, instance)
            first_champion = registry.champion_version()  # the registry lives under this shop's CLV_HOME
        assert first_champion is not None

        with running_api("serving.service:ClvService", Path(os.environ["BENTOML_HOME"]), tmp_path / "api.log") as api:
            customer = _any_customer(home)
            v1 = served_version(api, customer)
            assert trained_model_id(v1) == first_champion

            # month 2: rescoring only; no drift, so the sensor skips and nothing is retrained
            with month_env(home, folder, MONTHS[1]) as cfg:
                materialize(home, cfg, instance, selection=selection(rescore_job))
                assert metadata(instance, monitoring.feature_drift_report)["drift_share"] < cfg["drift_threshold"]
                context = dg.build_sensor_context(instance=instance)
                skip = retrain_on_drift_sensor(context)
                assert isinstance(skip, dg.SkipReason), skip
                assert registry.champion_version() == first_champion
            v2 = _wait_for(api, customer, lambda v: v != v1)  # the new snapshot is served, by the same model
            assert trained_model_id(v2) == first_champion

            # month 3: injected drift; the sensor asks for retraining once, the retrain promotes a new champion
            with month_env(home, folder, MONTHS[2]) as cfg:
                materialize(home, cfg, instance, selection=selection(rescore_job))
                drift = metadata(instance, monitoring.feature_drift_report)
                assert drift["drift_share"] >= cfg["drift_threshold"], drift
                context = dg.build_sensor_context(instance=instance, cursor=context.cursor)
                request = retrain_on_drift_sensor(context)
                assert isinstance(request, dg.RunRequest), request
                assert request.tags["clv/trigger"] == "drift"
                result = materialize(home, cfg, instance, selection=selection(retrain_job), tags=request.tags)
                assert result.success
                decision = metadata(instance, modeling.clv_model)
                new_champion = registry.champion_version()
            assert decision["promoted"] and new_champion != first_champion, decision

            # the running API serves the new champion without a restart
            v3 = _wait_for(api, customer, lambda v: trained_model_id(v) == new_champion)
            assert trained_model_id(v3) == new_champion


def _any_customer(home) -> str:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT min(customer_id) FROM main.customer_scores").fetchone()[0]


def _wait_for(api, customer: str, wanted, seconds: float = 90) -> str:
    """The version the API serves once `wanted(version)` holds (or the last one seen after `seconds`)."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        version = served_version(api, customer)
        if wanted(version) or time.monotonic() > deadline:
            return version
        time.sleep(1)
