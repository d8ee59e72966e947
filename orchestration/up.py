"""`make materialize` (and so `make up`): ingest, then bring the newest cutoff up to date, doing only what changed.

- code, configuration and data as last time (same cutoff): nothing runs;
- new data, same code and configuration, a champion exists: the `rescore` job (no training);
- otherwise (first run, or code or configuration changed): `refresh_all`, the zoo included.
Runs go to the Dagster instance of $DAGSTER_HOME, so they show in the UI beside scheduled ones.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import dagster as dg
import duckdb

from ml import registry, settings
from orchestration.run import run_job

# what a trained model depends on besides the data: the code that builds features and models, and the settings
CODE = ("ml", "orchestration", "dbt_project/models", "dbt_project/macros", "dbt_project/dbt_project.yml")
TAG_CODE, TAG_DATA = "clv/code_version", "clv/data_version"


def code_version() -> str:
    digest = hashlib.sha256()
    for entry in CODE:
        root = settings.REPO_ROOT / entry
        for path in sorted(root.rglob("*") if root.is_dir() else [root]):
            if path.is_file() and path.suffix in (".py", ".sql", ".yml", ".yaml") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(settings.REPO_ROOT)).encode() + path.read_bytes())
    config = Path(os.environ.get("CLV_CONFIG", settings.REPO_ROOT / "clv.yaml"))
    digest.update(config.read_bytes() if config.exists() else b"")
    return digest.hexdigest()[:16]


def data_version(warehouse: Path) -> str:
    """The content of every file ingested so far (their hashes, in raw.ingested_files)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        hashes = [r[0] for r in con.execute("SELECT sha256 FROM raw.ingested_files ORDER BY sha256").fetchall()]
    return hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]


def last_success(instance: dg.DagsterInstance, tags: dict, jobs: tuple[str, ...]) -> dg.DagsterRun | None:
    runs = instance.get_runs(dg.RunsFilter(tags=tags, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=20)
    return next((r for r in runs if r.job_name in jobs), None)


def ingest_then_newest_cutoff(instance: dg.DagsterInstance, who: str, trigger: str) -> str | None:
    """Run the ingest job, then the newest cutoff it found; None (said in one line) when either fails."""
    from orchestration.partitions import known_cutoff

    if not run_job("ingest", instance, tags={"clv/trigger": trigger}).success:
        return None
    cutoff = known_cutoff(instance)
    if cutoff is None:
        print(f"{who}: the exports hold no cutoff to score (see shop/orders' latest_cutoff in the UI)", file=sys.stderr)
    return cutoff


def main() -> int:
    instance = dg.DagsterInstance.get()
    cutoff = ingest_then_newest_cutoff(instance, "make up", "make")
    if cutoff is None:
        return 1
    code, data = code_version(), data_version(settings.duckdb_path())
    base = {"dagster/partition": cutoff, TAG_CODE: code}
    done = last_success(instance, {**base, TAG_DATA: data}, ("refresh_all", "rescore", "retrain"))
    if done is not None and registry.champion_version():
        print(f"make up: cutoff {cutoff} is up to date (run {done.run_id[:8]}: same code, settings and data); "
              "nothing to train or score", file=sys.stderr)
        return 0
    trained = last_success(instance, {TAG_CODE: code}, ("refresh_all", "retrain"))
    job = "rescore" if trained is not None and registry.champion_version() else "refresh_all"
    print(f"make up: {job} at cutoff {cutoff} "
          f"({'new data, same code and settings' if job == 'rescore' else 'first run, or code or settings changed'})",
          file=sys.stderr)
    result = run_job(job, instance, partition_key=cutoff, tags={TAG_CODE: code, TAG_DATA: data, "clv/trigger": "make"})
    return 0 if result.success else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C: the run is marked failed in the instance; the next one starts clean
        print("make up: interrupted", file=sys.stderr)
        sys.exit(130)
