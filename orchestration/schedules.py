"""Schedules: rescoring the newest cutoff every day, retraining at it every week.

The newest cutoff is the one the last ingestion found in the data (`as_of: latest`); a rescore ingests first, and
when that reveals a newer cutoff the new-data sensor scores it too.
"""
import dagster as dg

from ml import settings
from ml.data.plan import PlanError
from orchestration.jobs import rescore_job, retrain_job
from orchestration.partitions import known_cutoff, newest_cutoff

TAGS = {"clv/trigger": "schedule"}


def scheduled_cutoff(instance: dg.DagsterInstance) -> str | None:
    """The partition a scheduled run is for: the configured date, the simulator's last cutoff, or the newest
    cutoff the last ingestion found."""
    cfg = settings.load_config()
    if cfg.as_of != settings.LATEST or cfg.source.kind == "simulator":
        return newest_cutoff(cfg, None)
    return known_cutoff(instance)


def _request(context: dg.ScheduleEvaluationContext, job_name: str):
    try:
        cutoff = scheduled_cutoff(context.instance)
    except PlanError as exc:
        return dg.SkipReason(str(exc))
    if cutoff is None:
        return dg.SkipReason("no cutoff known yet: nothing is ingested (the incoming-files sensor ingests first)")
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
    return dg.RunRequest(run_key=f"{job_name}-{cutoff}-{stamp}", partition_key=cutoff,
                         tags={**TAGS, "clv/as_of": cutoff})


@dg.schedule(name="daily_rescore", job=rescore_job, cron_schedule="0 5 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def daily_rescore(context: dg.ScheduleEvaluationContext):
    """Rescore the newest cutoff with the champion."""
    return _request(context, "rescore")


@dg.schedule(name="weekly_retrain", job=retrain_job, cron_schedule="0 3 * * 1", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def weekly_retrain(context: dg.ScheduleEvaluationContext):
    """Retrain at the newest cutoff (promoted only if it beats the champion)."""
    return _request(context, "retrain")
