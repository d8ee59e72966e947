"""Run the real asset graph for one shop in its own folder (warehouse, datasets, models, reports)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import yaml

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def shop_env(home: Path, **overrides):
    """Point the platform at `home` with the test shop's config, updated by `overrides` (nested dicts merge)."""
    home.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load((REPO / "tests" / "clv_test.yaml").read_text())
    for key, value in overrides.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    (home / "clv.yaml").write_text(yaml.safe_dump(cfg))
    saved = {k: os.environ.get(k) for k in ("CLV_HOME", "CLV_CONFIG", "CLV_DUCKDB_PATH")}
    os.environ.update(CLV_HOME=str(home), CLV_CONFIG=str(home / "clv.yaml"),
                      CLV_DUCKDB_PATH=str(home / "warehouse.duckdb"))
    try:
        yield cfg
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def resources(home: Path, cfg: dict) -> dict:
    from dagster_dbt import DbtCliResource

    from ml import settings
    from orchestration.resources import ClvConfig, Warehouse

    return {
        "clv": ClvConfig(as_of=cfg["as_of"], horizon_days=cfg["horizon_days"],
                            sequence_weeks=cfg["sequence_weeks"], drift_threshold=cfg["drift_threshold"]),
        "warehouse": Warehouse(path=str(home / "warehouse.duckdb")),
        "dbt": DbtCliResource(project_dir=str(settings.DBT_PROJECT_DIR), profiles_dir=str(settings.DBT_PROJECT_DIR),
                              dbt_executable=settings.dbt_executable()),
    }


def materialize(home: Path, cfg: dict, instance: dg.DagsterInstance, selection=None,
                tags: dict | None = None) -> dg.ExecuteInJobResult:
    from orchestration.definitions import defs

    assets = list(defs.assets)
    return dg.materialize(assets, resources=resources(home, cfg), instance=instance, selection=selection,
                          raise_on_error=True, tags=tags)


def metadata(instance: dg.DagsterInstance, asset) -> dict:
    event = instance.get_latest_materialization_event(asset.key)
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}
