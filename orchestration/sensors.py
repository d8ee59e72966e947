"""Retraining when drift appears: a sensor on the drift report's drift share."""

import dagster as dg

from orchestration.assets.monitoring import feature_drift_report
from orchestration.jobs import retrain_job


def drift_decision(drift_share: float, threshold: float) -> tuple[bool, str]:
    if drift_share >= threshold:
        return True, f"drift share {drift_share:.2f} >= threshold {threshold:.2f}"
    return False, f"drift share {drift_share:.2f} below threshold {threshold:.2f}"


@dg.sensor(job=retrain_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def drift_retrain_sensor(context: dg.SensorEvaluationContext):
    """Requests a retraining run once per drift report whose drift share passes the threshold; skips otherwise."""
    record = context.instance.fetch_materializations(feature_drift_report.key, limit=1).records
    if not record:
        return dg.SkipReason("no drift report yet")
    event = record[0]
    if context.cursor and int(context.cursor) >= event.storage_id:
        return dg.SkipReason("no new drift report since the last evaluation")
    context.update_cursor(str(event.storage_id))
    md = event.asset_materialization.metadata
    retrain, reason = drift_decision(float(md["drift_share"].value), float(md["drift_threshold"].value))
    if not retrain:
        return dg.SkipReason(reason)
    # one retraining per drifted data state: retraining on the same data would not remove the drift
    as_of = md["as_of"].value if "as_of" in md else event.storage_id
    return dg.RunRequest(run_key=f"drift-{as_of}", tags={"clv/trigger": "drift", "clv/reason": reason})
