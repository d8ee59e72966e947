"""The Dagster definitions: assembles assets, checks, jobs, sensors and schedules. No logic lives here."""
import dagster as dg

from orchestration.assets import ingestion, modeling, monitoring, packaging
from orchestration.assets.transform import clv_dbt_models
from orchestration.executor import clv_executor
from orchestration.jobs import all_assets_job, ingest_job, rescore_job, retrain_job
from orchestration.resources import build_resources
from orchestration.schedules import daily_rescore, weekly_retrain
from orchestration.sensors.drift import retrain_on_drift_sensor
from orchestration.sensors.incoming import incoming_files_sensor, new_data_sensor

defs = dg.Definitions(
    assets=[
        ingestion.shop_exports, ingestion.raw_tables,
        clv_dbt_models,
        modeling.training_set, modeling.backtest_model, modeling.model_evaluation, modeling.clv_model,
        modeling.customer_scores,
        monitoring.feature_drift_report, monitoring.prediction_drift_report,
        monitoring.model_performance,
        packaging.served_model,
    ],
    jobs=[ingest_job, all_assets_job, rescore_job, retrain_job],
    sensors=[retrain_on_drift_sensor, incoming_files_sensor, new_data_sensor],
    schedules=[daily_rescore, weekly_retrain],
    resources=build_resources(),
    # in process, or a process per step with the warehouse's steps one at a time (clv.yaml `execution:`)
    executor=clv_executor,
)
