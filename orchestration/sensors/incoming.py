"""New export files: a sensor on the user's incoming folder that runs ingestion; a sensor on ingestion that scores
the newest cutoff once new data has arrived (retraining the whole flow when there is no champion yet)."""

import hashlib
import json
import time
from pathlib import Path

import dagster as dg
import duckdb

from ml.data import ingest
from orchestration.assets.ingestion import export_folder
from ml import registry
from orchestration.jobs import all_assets_job, ingest_job, rescore_job
from orchestration.partitions import ORDERS
from orchestration.resources import ClvConfig, Warehouse

SCORES = dg.AssetKey("customer_scores")
SETTLE_SECONDS = 30  # a file modified more recently may still be being copied in


def ingested_digests(warehouse_path: str) -> set[str]:
    """Content hashes already in raw.ingested_files (read-only; raises duckdb.IOException while a run writes)."""
    if not Path(warehouse_path).exists():
        return set()
    with duckdb.connect(warehouse_path, read_only=True) as con:
        try:
            return {r[0] for r in con.execute("SELECT sha256 FROM raw.ingested_files").fetchall()}
        except duckdb.CatalogException:  # nothing ingested yet
            return set()


def digests(files: list[Path], known: dict) -> dict[str, list]:
    """{name: [size, mtime_ns, sha256]}, hashing only the files whose size or mtime changed since `known`."""
    out = {}
    for path in files:
        stat = path.stat()
        seen = known.get(path.name)
        same = seen and seen[0] == stat.st_size and seen[1] == stat.st_mtime_ns
        out[path.name] = seen if same else [stat.st_size, stat.st_mtime_ns, ingest.file_digest(path)]
    return out


@dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def incoming_files_sensor(context: dg.SensorEvaluationContext, clv: ClvConfig, warehouse: Warehouse):
    """Requests a run of ingestion when the export folder holds files whose content has
    not been ingested yet (run key: the hash of that content, so the same content never runs twice); skips with the
    reason otherwise. The cursor remembers each file's hash (rehashed only when its size or time changes) and the
    content already handled, so the warehouse is opened (read-only) only when new content appears."""
    cfg = clv.platform()
    if cfg.source.kind != "files":
        return dg.SkipReason(f"source.kind is '{cfg.source.kind}': there is no incoming folder to watch")
    folder = export_folder(cfg)
    try:
        found = ingest.discover(folder)
    except ingest.IngestError as exc:
        return dg.SkipReason(str(exc))
    if not found["orders"]:  # a run would stop on it: wait for the orders
        return dg.SkipReason(f"{folder}: no orders file yet (expected orders*.csv or orders*.parquet)")
    files = [path for paths in found.values() for path in paths]
    settling = [p.name for p in files if time.time() - p.stat().st_mtime < SETTLE_SECONDS]
    if settling:
        return dg.SkipReason(f"waiting for {', '.join(settling)} to settle (modified < {SETTLE_SECONDS} s ago)")
    state = json.loads(context.cursor) if context.cursor else {"files": {}, "handled": []}
    state["files"] = digests(files, state["files"])
    handled = set(state["handled"])
    candidates = {digest: name for name, (_, _, digest) in state["files"].items() if digest not in handled}
    if not candidates:
        context.update_cursor(json.dumps(state))
        return dg.SkipReason(f"no new content in {folder} ({len(files)} file(s), all ingested or requested)")
    try:
        done = ingested_digests(warehouse.path)
    except (duckdb.IOException, duckdb.ConnectionException):
        context.update_cursor(json.dumps(state))
        return dg.SkipReason("the warehouse is busy (a run is writing to it); looking again at the next tick")
    new = {digest: name for digest, name in candidates.items() if digest not in done}
    state["handled"] = sorted(handled | set(candidates))
    context.update_cursor(json.dumps(state))
    if not new:
        return dg.SkipReason(f"no new content in {folder} ({len(files)} file(s), all ingested)")
    content = hashlib.sha256("".join(sorted(new)).encode()).hexdigest()[:16]
    names = ", ".join(sorted(new.values()))
    return dg.RunRequest(run_key=f"files-{content}", tags={"clv/trigger": "new_files", "clv/files": names[:250]})


@dg.sensor(jobs=[all_assets_job, rescore_job], minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING)
def new_data_sensor(context: dg.SensorEvaluationContext):
    """Scores the newest cutoff after an ingestion that added files: the `rescore` job, or `refresh_all` (training
    included) while there is no champion. The cursor is the last ingestion looked at."""
    after = int(context.cursor or 0)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=ORDERS, after_storage_id=after), limit=100, ascending=True).records
    if not records:
        return dg.SkipReason("no ingestion since the last look")
    context.update_cursor(str(records[-1].storage_id))
    added = [r for r in records if _value(r, "files_ingested", 0) > 0]
    if not added:
        return dg.SkipReason(f"{len(records)} ingestion(s) since the last look, none with new files")
    newest = added[-1]
    cutoff = str(_value(newest, "latest_cutoff", "none"))
    if cutoff.startswith("none"):
        return dg.SkipReason(f"new files, but no cutoff to score: {cutoff}")
    scored = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SCORES, asset_partitions=[cutoff]), limit=1).records
    if scored and scored[0].storage_id > newest.storage_id:  # e.g. `make up` ingested and scored in a row
        return dg.SkipReason(f"cutoff {cutoff} was scored after the last ingestion with new files")
    job = rescore_job if registry.champion_version() else all_assets_job
    return dg.RunRequest(run_key=f"new-data-{newest.storage_id}", job_name=job.name, partition_key=cutoff,
                         tags={"clv/trigger": "new_data", "clv/as_of": cutoff})


def _value(record, key: str, default):
    entry = record.asset_materialization.metadata.get(key)
    return entry.value if entry is not None else default
