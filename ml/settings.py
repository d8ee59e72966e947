"""Where the platform keeps its files, and the run configuration, read from the environment and `clv.yaml`.

Every path is absolute, so dbt (a subprocess), Dagster and BentoML agree on the same DuckDB file.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"


@contextmanager
def environment(extra: dict[str, str]):
    """os.environ with `extra` for the length of the block, then as it was (dagster-dbt hands dbt this process's
    environment; a test points the platform at its own workspace)."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def clv_home() -> Path:
    """Root folder of one platform workspace (data, warehouse, reports, stores)."""
    return Path(os.environ.get("CLV_HOME", REPO_ROOT / ".clv")).resolve()


def duckdb_path() -> Path:
    return Path(os.environ.get("CLV_DUCKDB_PATH", clv_home() / "warehouse.duckdb")).resolve()


def spark_dir() -> Path:
    """The Spark engine's folder (engine: spark): raw Parquet exports, its metastore and its tables' Parquet."""
    return clv_home() / "spark"


def reports_dir() -> Path:
    return clv_home() / "reports"


def models_dir() -> Path:
    """Model artifacts staged before they enter the BentoML store."""
    return clv_home() / "models"


def datasets_dir() -> Path:
    """The windows a run trained, judged and scored on (ml.pipeline.Windows)."""
    return clv_home() / "datasets"


@dataclass
class SourceConfig:
    """Where the shop's exports come from and how their columns are named."""

    kind: str = "simulator"  # "simulator" (built-in shop) or "files" (the user's exports)
    path: str | None = None  # folder of orders/customers/events files when kind == "files"
    columns: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> {our name: their name}
    timestamp_format: str | None = None  # strptime format; None = ISO dates or timestamps
    pseudonymize: bool = False  # keyed hash of customer ids, key from CLV_PSEUDONYM_KEY
    cancellation_prefix: str | None = None  # an order id starting with it is a cancellation (e.g. "C")
    timezone: str = "UTC"  # timestamps with a UTC offset are converted to this zone; naive ones are taken to be in it


@dataclass
class SimulatorConfig:
    n_customers: int = 20_000
    start: str = "2024-01-01"
    seed: int = 7
    drift_from: str | None = None  # ISO date from which an injected shift applies
    drift_kind: str | None = None  # "channel_mix", "price", "engagement"
    dirty: bool = False  # inject malformed rows
    end: str = "2025-12-31"  # the simulated exports hold orders up to this date


@dataclass
class TrainingConfig:
    """How the model zoo is trained and a new version is judged (clv.yaml `training:`)."""

    search_budget_seconds: float = 120.0  # wall-clock budget of the deep model's hyperparameter search
    promotion_margin: float = 0.005  # normalized Gini a challenger must add to the champion's to replace it
    models: list[str] | None = None  # zoo members to train (None: ml.models.zoo.DEFAULT_MODELS)
    fast: bool = False  # few epochs and small forests: for tests and quick looks, not for production
    backtest_folds: int = 3  # rolling-origin folds the champion is chosen on (fewer when the history is short)
    seed: int = 0
    processes: int = 1  # > 1: the deep models train with DistributedDataParallel on that many processes (torchrun)
    # customers a model learns from per window (a sample by a hash of the id, the same ones at every cutoff):
    # past a few hundred thousand more rows change the models little and cost their time; null: every customer
    max_rows: int | None = 200_000

    def __post_init__(self):
        if not isinstance(self.processes, int) or self.processes < 1:
            raise ValueError(f"clv.yaml: training.processes is {self.processes!r}; expected a whole number >= 1")
        if self.max_rows is not None and (not isinstance(self.max_rows, int) or self.max_rows < 1):
            raise ValueError(f"clv.yaml: training.max_rows is {self.max_rows!r}; expected a whole number >= 1 "
                             "or null (every customer)")


@dataclass
class CutoffsConfig:
    """The cutoffs the platform scores at: Dagster's partitions, one per period; the partition key is the cutoff."""

    every: str = "weekly"  # "weekly" or "daily"
    first: str = "2025-01-01"  # the first cutoff; weekly cutoffs fall on its weekday

    def __post_init__(self):
        if self.every not in PERIOD_DAYS:
            raise ValueError(f"clv.yaml: cutoffs.every is '{self.every}'; expected one of {', '.join(PERIOD_DAYS)}")
        date.fromisoformat(self.first)

    @property
    def first_date(self) -> date:
        return date.fromisoformat(self.first)

    @property
    def period_days(self) -> int:
        return PERIOD_DAYS[self.every]


@dataclass
class ExecutionConfig:
    """How the steps of a run the Dagster instance launches execute (clv.yaml `execution:`): `in_process`, one
    after another, or `multiprocess`, each step in a process of its own, up to `max_concurrent` at once."""

    mode: str = "in_process"
    max_concurrent: int = 4

    def __post_init__(self):
        if self.mode not in EXECUTION_MODES:
            raise ValueError(f"clv.yaml: execution.mode is '{self.mode}'; "
                             f"expected one of {', '.join(EXECUTION_MODES)}")
        if self.max_concurrent < 1:
            raise ValueError(f"clv.yaml: execution.max_concurrent is {self.max_concurrent}; expected at least 1")


EXECUTION_MODES = ("in_process", "multiprocess")
ENGINES = ("duckdb", "spark")  # what dbt builds the marts on (ml/data/build.py)
PERIOD_DAYS = {"weekly": 7, "daily": 1}
LATEST = "latest"


@dataclass
class PlatformConfig:
    as_of: str = LATEST  # the cutoff t (scores are for (t, t + horizon]): a date, or the newest cutoff the data covers
    cutoffs: CutoffsConfig = field(default_factory=CutoffsConfig)
    horizon_days: int = 90
    sequence_weeks: int = 26
    max_events: int = 64  # most recent events per customer in customer_events (what deep_transformer reads)
    drift_threshold: float = 0.14  # share of drifted behaviour columns (clock columns left out) that triggers retraining
    decay_threshold: float = 0.1  # relative drop of matured Gini vs the backtest's that triggers retraining
    source: SourceConfig = field(default_factory=SourceConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    engine: str = "duckdb"  # the dbt layer's engine: the DuckDB file itself, or a local Spark (ml/data/spark_engine.py)

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"clv.yaml: engine is '{self.engine}'; expected one of {', '.join(ENGINES)}")

    @property
    def as_of_date(self) -> date:
        if self.as_of == LATEST:
            raise ValueError("as_of is 'latest': resolve it against the data first (ml.data.plan.latest_cutoff)")
        return date.fromisoformat(self.as_of)


def load_config(path: str | os.PathLike | None = None) -> PlatformConfig:
    """Read `clv.yaml` (or $CLV_CONFIG); missing keys keep their defaults."""
    path = Path(path or os.environ.get("CLV_CONFIG", REPO_ROOT / "clv.yaml"))
    raw = yaml.safe_load(path.read_text()) if path.exists() else {}
    raw = raw or {}
    source = SourceConfig(**raw.pop("source", {}) or {})
    simulator = SimulatorConfig(**raw.pop("simulator", {}) or {})
    training = TrainingConfig(**raw.pop("training", {}) or {})
    cutoffs = CutoffsConfig(**raw.pop("cutoffs", {}) or {})
    execution = ExecutionConfig(**raw.pop("execution", {}) or {})
    if "as_of" in raw:
        raw["as_of"] = str(raw["as_of"])  # YAML reads an unquoted date as a date
    return PlatformConfig(source=source, simulator=simulator, training=training, cutoffs=cutoffs,
                          execution=execution, **raw)


def dbt_executable() -> str:
    """dbt from this interpreter's environment, so it runs without an activated virtualenv."""
    import shutil
    import sys

    for folder in (Path(sys.executable).parent, Path(sys.prefix) / "bin"):
        if (folder / "dbt").exists():
            return str(folder / "dbt")
    return shutil.which("dbt") or "dbt"
