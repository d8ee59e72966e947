"""Schedules: weekly retraining."""
import dagster as dg

from orchestration.jobs import retrain_job

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain", job=retrain_job, cron_schedule="0 3 * * 1", execution_timezone="UTC",
    tags={"clv/trigger": "schedule"},
)
