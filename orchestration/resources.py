"""Resources: the platform's configuration and the DuckDB warehouse, built in one place from the environment."""

import os
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource

from ml import settings

_DEFAULTS = settings.load_config()


class ClvConfig(dg.ConfigurableResource):
    """Run configuration; defaults come from clv.yaml and can be changed per run in the launchpad."""

    as_of: str = _DEFAULTS.as_of
    horizon_days: int = _DEFAULTS.horizon_days
    sequence_weeks: int = _DEFAULTS.sequence_weeks
    drift_threshold: float = _DEFAULTS.drift_threshold
    decay_threshold: float = _DEFAULTS.decay_threshold

    def platform(self) -> settings.PlatformConfig:
        cfg = settings.load_config()
        cfg.as_of, cfg.horizon_days = self.as_of, self.horizon_days
        cfg.sequence_weeks, cfg.drift_threshold = self.sequence_weeks, self.drift_threshold
        cfg.decay_threshold = self.decay_threshold
        return cfg


class Warehouse(dg.ConfigurableResource):
    """The DuckDB file that ingestion writes, dbt transforms and training reads. One writer at a time."""

    path: str

    @contextmanager
    def connect(self, read_only: bool = False):
        con = duckdb.connect(self.path, read_only=read_only)
        try:
            yield con
        finally:
            con.close()


def build_resources() -> dict:
    # dbt (a subprocess) reads the warehouse path from the environment: the same absolute file as Python's
    os.environ.setdefault("CLV_DUCKDB_PATH", str(settings.duckdb_path()))
    return {
        "clv": ClvConfig(),
        "warehouse": Warehouse(path=str(settings.duckdb_path())),
        "dbt": DbtCliResource(project_dir=str(settings.DBT_PROJECT_DIR), profiles_dir=str(settings.DBT_PROJECT_DIR),
                              dbt_executable=settings.dbt_executable()),
    }
