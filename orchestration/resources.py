"""Resources: the platform's configuration and the DuckDB warehouse, built in one place from the environment."""

import os
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource

from ml import settings
from ml.lock import WorkspaceBusy, workspace_lock

_DEFAULTS = settings.load_config()
LOCK_WAIT_SECONDS = 30  # a run that finds the workspace busy waits this long before it stops, saying who holds it


class ClvConfig(dg.ConfigurableResource):
    """Run configuration; defaults come from clv.yaml and can be changed per run in the launchpad. The cutoff is
    not among them: it is the run's partition key."""

    horizon_days: int = _DEFAULTS.horizon_days
    sequence_weeks: int = _DEFAULTS.sequence_weeks
    max_events: int = _DEFAULTS.max_events
    drift_threshold: float = _DEFAULTS.drift_threshold
    decay_threshold: float = _DEFAULTS.decay_threshold

    def platform(self, cutoff: str | None = None) -> settings.PlatformConfig:
        """clv.yaml with this run's settings; `cutoff` (the partition key) is the run's as_of."""
        cfg = settings.load_config()
        cfg.as_of = cutoff or cfg.as_of
        cfg.horizon_days = self.horizon_days
        cfg.sequence_weeks, cfg.drift_threshold = self.sequence_weeks, self.drift_threshold
        cfg.max_events = self.max_events
        cfg.decay_threshold = self.decay_threshold
        return cfg


class Warehouse(dg.ConfigurableResource):
    """The DuckDB file that ingestion writes, dbt transforms and training reads. One writer at a time."""

    path: str

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext):
        """A run holds the workspace's lock for its whole length (ml/lock.py); sensors reading it do not. Where the
        run's executor took it already (orchestration/executor.py), this process of the run enters it."""
        run_id = getattr(context, "run_id", None)
        if not run_id:
            yield self
            return
        try:
            lock = workspace_lock(Path(self.path).parent, f"Dagster run {run_id[:8]}", wait_seconds=LOCK_WAIT_SECONDS,
                                  key=run_id)
            holder = lock.__enter__()
        except WorkspaceBusy as exc:
            raise dg.Failure(description=str(exc)) from None
        try:
            if holder["reaped"] and context.log:
                context.log.warning(f"ended {holder['reaped']} process(es) a killed earlier run left behind")
            yield self
        finally:
            lock.__exit__(None, None, None)

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
