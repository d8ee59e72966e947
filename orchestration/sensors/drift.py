"""Retraining when the monitors say so: drift of the inputs, or decay of matured performance.

The sensor fires once per episode: when a signal crosses its threshold it requests one retraining run, then stays
quiet while the signal stays up (retraining on the same data would not lower it), and re-arms once it comes back
down. The cursor holds the last event read and which signals are in an episode.
"""
import json
from dataclasses import asdict, dataclass, field

import dagster as dg

from orchestration.assets.monitoring import feature_drift_report, model_performance
from orchestration.jobs import retrain_job

# monitored asset -> (metadata value, metadata threshold): the signal is up when value >= threshold
SIGNALS = {
    "drift": (feature_drift_report.key, "drift_share", "drift_threshold"),
    "decay": (model_performance.key, "gini_decay", "decay_threshold"),
}


@dataclass
class MonitorCursor:
    last_storage_id: int = 0
    in_episode: dict[str, bool] = field(default_factory=dict)
    newest_as_of: str = ""  # the latest cutoff a signal was read for: a backfill's older cutoffs retrain nothing

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str | None) -> "MonitorCursor":
        return cls(**json.loads(text)) if text else cls()


@dataclass(frozen=True)
class Signal:
    kind: str  # "drift" or "decay"
    storage_id: int
    value: float | None
    threshold: float
    as_of: str


def decide(signals: list[Signal], cursor: MonitorCursor) -> tuple[list[Signal], list[str], MonitorCursor]:
    """Walk new signals oldest first: (signals that start an episode, reasons for the rest, the new cursor)."""
    fire, notes = [], []
    episodes = dict(cursor.in_episode)
    last, newest = cursor.last_storage_id, cursor.newest_as_of
    for s in sorted(signals, key=lambda s: s.storage_id):
        last = max(last, s.storage_id)
        if s.as_of < newest:
            notes.append(f"{s.kind} at {s.as_of}: an earlier cutoff than {newest} (a backfill), not acted on")
            continue
        newest = s.as_of
        if s.value is None:
            notes.append(f"{s.kind} at {s.as_of}: not measured yet")
            continue
        up = s.value >= s.threshold
        if up and not episodes.get(s.kind):
            fire.append(s)
        elif up:
            notes.append(f"{s.kind} {s.value:.2f} >= {s.threshold:.2f} at {s.as_of}, already retrained for this episode")
        else:
            notes.append(f"{s.kind} {s.value:.2f} below threshold {s.threshold:.2f} at {s.as_of}")
        episodes[s.kind] = up
    return fire, notes, MonitorCursor(last, episodes, newest)


def read_signals(instance: dg.DagsterInstance, after_storage_id: int) -> list[Signal]:
    out = []
    for kind, (key, value_key, threshold_key) in SIGNALS.items():
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after_storage_id), limit=100).records
        for record in records:
            md = record.asset_materialization.metadata
            if threshold_key not in md:
                continue
            value = md[value_key].value if value_key in md else None
            out.append(Signal(kind, record.storage_id, None if value is None else float(value),
                              float(md[threshold_key].value), str(md["as_of"].value) if "as_of" in md else "?"))
    return out


@dg.sensor(job=retrain_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def retrain_on_drift_sensor(context: dg.SensorEvaluationContext):
    """Requests retraining once per episode of feature drift or performance decay; skips with the reason otherwise."""
    cursor = MonitorCursor.loads(context.cursor)
    fire, notes, new_cursor = decide(read_signals(context.instance, cursor.last_storage_id), cursor)
    context.update_cursor(new_cursor.dumps())
    if not fire:
        return dg.SkipReason("; ".join(notes) or "no new drift or performance report")
    s = fire[-1]
    # several cutoffs read at once (a backfill): retrain at the newest, whose data the next scores come from
    cutoff = max(new_cursor.newest_as_of, s.as_of)
    reason = f"{s.kind} {s.value:.2f} >= threshold {s.threshold:.2f} at {s.as_of}"
    return dg.RunRequest(run_key=f"{s.kind}-{s.storage_id}", partition_key=cutoff,
                         tags={"clv/trigger": s.kind, "clv/reason": reason, "clv/as_of": cutoff})
