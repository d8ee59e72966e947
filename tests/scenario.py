"""Run the real asset graph for one shop in its own folder (warehouse, datasets, models, reports)."""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import yaml

REPO = Path(__file__).resolve().parent.parent


def parse_dbt_project() -> None:
    """dbt's manifest, which dagster-dbt reads when the definitions are imported (`make manifest`). Parsing opens no
    database, so any warehouse path will do when none is set."""
    env = {"CLV_DUCKDB_PATH": str(REPO / ".clv" / "warehouse.duckdb"), **os.environ}
    subprocess.run([str(Path(sys.executable).parent / "dbt"), "parse", "--quiet", "--project-dir",
                    str(REPO / "dbt_project"), "--profiles-dir", str(REPO / "dbt_project")],
                   check=True, cwd=REPO, env=env)


def ensure_manifest() -> None:
    """dbt's manifest when there is none yet (a fresh clone): what a benchmark needs before importing the
    definitions."""
    if not (REPO / "dbt_project" / "target" / "manifest.json").exists():
        print("no dbt manifest yet: running dbt parse", file=sys.stderr, flush=True)
        parse_dbt_project()


@contextmanager
def shop_env(home: Path, base: Path = REPO / "tests" / "clv_test.yaml", **overrides):
    """Point the platform at `home` with the test shop's config (or `base`), updated by `overrides` (nested dicts
    merge)."""
    home.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load(Path(base).read_text())
    for key, value in overrides.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    (home / "clv.yaml").write_text(yaml.safe_dump(cfg))
    from ml import settings

    with settings.environment({"CLV_HOME": str(home), "CLV_CONFIG": str(home / "clv.yaml"),
                               "CLV_DUCKDB_PATH": str(home / "warehouse.duckdb")}):
        yield cfg


def resources(home: Path, cfg: dict) -> dict:
    from dagster_dbt import DbtCliResource

    from ml import settings
    from orchestration.resources import ClvConfig, Warehouse

    return {
        "clv": ClvConfig(horizon_days=cfg["horizon_days"], sequence_weeks=cfg["sequence_weeks"],
                         max_events=cfg.get("max_events", settings.PlatformConfig.max_events),
                         drift_threshold=cfg["drift_threshold"]),
        "warehouse": Warehouse(path=str(home / "warehouse.duckdb")),
        "dbt": DbtCliResource(project_dir=str(settings.DBT_PROJECT_DIR), profiles_dir=str(settings.DBT_PROJECT_DIR),
                              dbt_executable=settings.dbt_executable()),
    }


def materialize(home: Path, cfg: dict, instance: dg.DagsterInstance, selection=None,
                tags: dict | None = None, partition: str | None = None) -> dg.ExecuteInJobResult:
    """One run of the real graph (or `selection` of it) for one cutoff: `partition`, else the shop's `as_of`, else
    (`as_of: latest`) the newest cutoff its data covers. For a user's files that is known once they are ingested,
    so ingestion runs first, on its own, as `make up` does."""
    from ml import settings
    from orchestration.definitions import defs
    from orchestration.jobs import INGESTION
    from orchestration.partitions import known_cutoff, newest_cutoff

    assets = list(defs.assets)

    def run(chosen, key):
        return dg.materialize(assets, resources=resources(home, cfg), instance=instance, selection=chosen,
                              raise_on_error=True, tags=tags, partition_key=key)

    chosen = (selection if selection is not None else dg.AssetSelection.all()).resolve(assets)
    if not any(a.partitions_def is not None and set(a.keys) & chosen for a in assets):
        return run(selection, None)  # ingestion alone is not partitioned
    if partition is None and cfg.get("as_of", settings.LATEST) != settings.LATEST:
        partition = str(cfg["as_of"])
    if partition is None and cfg.get("source", {}).get("kind") == "files":
        run(INGESTION, None)
        partition = known_cutoff(instance)
        selection = (selection if selection is not None else dg.AssetSelection.all()) - INGESTION
    return run(selection, partition or newest_cutoff(settings.load_config(), None))


def metadata(instance: dg.DagsterInstance, asset, partition: str | None = None) -> dict:
    """The latest materialization's metadata (of one partition when given)."""
    if partition is None:
        event = instance.get_latest_materialization_event(asset.key)
    else:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset.key, asset_partitions=[partition]), limit=1).records
        event = records[0].event_log_entry
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}
