"""Schedules: rescoring every day, retraining every week."""
import dagster as dg

from orchestration.jobs import rescore_job, retrain_job

daily_rescore = dg.ScheduleDefinition(
    name="daily_rescore", job=rescore_job, cron_schedule="0 5 * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING, tags={"clv/trigger": "schedule"},
)
weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain", job=retrain_job, cron_schedule="0 3 * * 1", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING, tags={"clv/trigger": "schedule"},
)
