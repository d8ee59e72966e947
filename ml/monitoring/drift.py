"""Drift monitoring: does the data we score today still look like the data the models learned from?

CLV models are retrained when their inputs move, not on a calendar. This module compares a *reference*
frame (the training features, or the scores of the last accepted run) with a *current* frame using
Evidently 0.7's `DataDriftPreset`, and returns a small, plain `DriftResult` that the orchestration layer
can act on (e.g. retrain when `share >= drift_threshold`). Optionally it writes the Evidently HTML report
and appends the run to a local Evidently workspace, so `evidently ui --workspace PATH` shows drift over time.

Evidently's per-column test (defaults of `DataDriftPreset`):
- reference > 1000 rows: normed Wasserstein distance (numerical) / Jensen-Shannon distance (categorical);
  the score is a distance and a column drifts when score >= 0.1;
- reference <= 1000 rows: K-S / chi-square (or Z) tests; the score is a p-value and a column drifts when
  score < 0.05.
So the *direction* of a score depends on the method. The drifted flags are therefore read from Evidently's
own per-column test results (what Evidently itself counts), never recomputed here from score vs threshold.
"""
from __future__ import annotations

import os

# Before evidently is imported: the platform runs offline, so no usage telemetry.
os.environ.setdefault("DO_NOT_TRACK", "1")

import logging  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Iterable, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

from ml.data.windows import CATEGORICAL  # noqa: E402
from ml.models.interface import ClvModel  # noqa: E402
from ml.models.zoo.btyd import FEATURES as DERIVED  # noqa: E402

# Features that grow with the calendar for every customer: between two cutoffs they drift because time passed,
# not because the shop changed, so they are left out of the drift check (and named in its metadata).
CLOCK_COLUMNS = frozenset({
    "tenure_days", "days_since_first_order", "btyd_age_days", "btyd_recency_days", "recency_days",
    "mean_interpurchase_days", "std_interpurchase_days", "days_since_last_event",
})


def drift_columns(model: ClvModel) -> tuple[list[str], list[str]]:
    """(numerical, categorical): the features `model` reads that the drift check compares, less the clock columns
    and the BG/NBD outputs a learner derives itself (they move with the columns they come from)."""
    numerical = [c for c in model.prep.numeric if c not in CLOCK_COLUMNS and c not in DERIVED]
    return numerical, [c for c in CATEGORICAL if c in model.prep.categorical]

log = logging.getLogger(__name__)

# Type tags of the items in `Snapshot.dict()` (Evidently 0.7).
VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
DRIFTED_COLUMNS_COUNT = "evidently:metric_v2:DriftedColumnsCount"


@dataclass(frozen=True)
class DriftResult:
    """Outcome of one drift check, in plain Python types (safe to log, serialise or put in asset metadata)."""

    share: float  # share of drifted columns (0..1), Evidently's DriftedColumnsCount.share
    n_drifted: int
    n_columns: int  # columns actually compared (all-NULL columns are left out)
    column_scores: dict[str, float]  # per column drift score from Evidently (distance or p-value, see module doc)
    drifted_columns: list[str]
    html_path: str | None


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: Sequence[str],
    categorical: Sequence[str],
    html_path: str | os.PathLike | None = None,
    workspace: str | os.PathLike | None = None,
    project_name: str = "clv",
    *,
    max_rows: int = 20_000,
    seed: int = 0,
    timestamp: datetime | None = None,
    drift_share: float = 0.5,
) -> DriftResult:
    """Compare `current` with `reference` column by column and say which columns drifted.

    - Only the named columns are compared, with the types given here: Evidently's own inference would
      turn low-cardinality integer columns into categoricals and id-like strings into text.
    - Columns that are entirely NULL in either frame carry no distribution, so they are dropped (and logged),
      not reported as drifted; if nothing is left a ValueError is raised rather than a silent "no drift".
    - Both frames are sampled (seeded) to at most `max_rows` rows so a check stays fast on large tables;
      keep `max_rows` above 1000 so the default distance-based tests are used (see module docstring).
    - `timestamp` dates the Evidently run (for backfills); default: now.
    - `drift_share`: the share of drifted columns at which Evidently's report calls the dataset drifted (the
      platform's `drift_threshold`, so the report says what the platform acts on).
    """
    numerical = list(dict.fromkeys(numerical))
    categorical = list(dict.fromkeys(categorical))
    both = set(numerical) & set(categorical)
    if both:
        raise ValueError(f"columns declared both numerical and categorical: {sorted(both)}")
    columns = numerical + categorical
    if not columns:
        raise ValueError("no columns to compare")
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise KeyError(f"{name} frame lacks columns {missing}")

    ref = _prepare(_sample(reference[columns], max_rows, seed), numerical, categorical)
    cur = _prepare(_sample(current[columns], max_rows, seed), numerical, categorical)

    empty = [c for c in columns if ref[c].isna().all() or cur[c].isna().all()]
    if empty:
        log.warning("drift: ignoring columns that are entirely NULL in one frame: %s", empty)
    numerical = [c for c in numerical if c not in empty]
    categorical = [c for c in categorical if c not in empty]
    columns = numerical + categorical
    if not columns:
        raise ValueError(f"every column is entirely NULL in one of the frames: {empty}")

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    report = Report([DataDriftPreset(columns=columns, drift_share=drift_share)], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(cur[columns], data_definition=definition),
        Dataset.from_pandas(ref[columns], data_definition=definition),
        timestamp=timestamp,
    )
    share, n_drifted, scores, drifted = parse_snapshot(snapshot.dict())

    written = None
    if html_path is not None:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        written = os.fspath(html_path)
        snapshot.save_html(written)  # must be a str: Evidently 0.7 silently ignores a Path
    if workspace is not None:
        add_to_workspace(snapshot, workspace, project_name)

    return DriftResult(
        share=share,
        n_drifted=n_drifted,
        n_columns=len(scores),
        column_scores=scores,
        drifted_columns=drifted,
        html_path=written,
    )


def prediction_drift(
    reference_scores: pd.DataFrame,
    current_scores: pd.DataFrame,
    columns: Iterable[str] = ("predicted_value", "p_return"),
    html_path: str | os.PathLike | None = None,
    workspace: str | os.PathLike | None = None,
    project_name: str = "clv-predictions",
    **kwargs: Any,
) -> DriftResult:
    """Drift of the model outputs (all numerical), the early warning when no ground truth exists yet.

    Same check as `feature_drift`; runs go to their own workspace project by default so the
    "share of drifted columns" line of features and of predictions are not mixed in one chart.
    """
    return feature_drift(
        reference_scores,
        current_scores,
        numerical=list(columns),
        categorical=[],
        html_path=html_path,
        workspace=workspace,
        project_name=project_name,
        **kwargs,
    )


def parse_snapshot(snapshot: dict) -> tuple[float, int, dict[str, float], list[str]]:
    """Read (share, n_drifted, column_scores, drifted_columns) from `Snapshot.dict()` of a DataDriftPreset run.

    Structure (Evidently 0.7.23):
    - `metrics[i]`: {"id", "metric_name", "config": {"type", ...}, "value"}; DriftedColumnsCount has
      `value == {"count", "share"}`; each ValueDrift has `config.column`, `config.method`, `config.threshold`
      and a float `value` (the score).
    - `tests[i]`: {"id", "name", "description", "metric_config": {"metric_id", "params": <the metric config>},
      "test_config", "status": "SUCCESS" | "FAIL" | ..., "bound_test"}; a ValueDrift test FAILs exactly when
      Evidently detected drift in that column, whichever direction the method's score has.
    """
    metrics = snapshot["metrics"]
    scores = {m["config"]["column"]: float(m["value"]) for m in metrics if m["config"]["type"] == VALUE_DRIFT}
    counts = [m["value"] for m in metrics if m["config"]["type"] == DRIFTED_COLUMNS_COUNT]
    if len(counts) != 1:
        raise RuntimeError(f"expected one DriftedColumnsCount in the snapshot, found {len(counts)}")
    column_tests = {
        t["metric_config"]["params"]["column"]: t["status"]
        for t in snapshot.get("tests", [])
        if t["metric_config"]["params"].get("type") == VALUE_DRIFT
    }
    untested = set(scores) - set(column_tests)
    if untested:  # would mean the report ran without include_tests=True
        raise RuntimeError(f"no drift test result for columns {sorted(untested)}")
    drifted = [c for c in scores if column_tests[c] == "FAIL"]
    n_drifted, share = int(counts[0]["count"]), float(counts[0]["share"])
    if n_drifted != len(drifted):
        log.warning("drift: DriftedColumnsCount=%d but %d column tests failed", n_drifted, len(drifted))
    return share, n_drifted, scores, drifted


def add_to_workspace(snapshot: Any, workspace: str | os.PathLike, project_name: str, panels: list | None = None) -> None:
    """Append the run to a local Evidently workspace, creating the project (by name) on first use.

    Not safe against two processes creating the same project at the same moment: run drift checks
    from one writer (as the orchestrator does).
    """
    from evidently.ui.workspace import Workspace  # imported lazily: pulls in the UI stack

    Path(workspace).mkdir(parents=True, exist_ok=True)
    ws = Workspace(str(workspace))
    found = ws.search_project(project_name)
    project = found[0] if found else _create_project(ws, project_name, panels)
    ws.add_run(project.id, snapshot, include_data=False)


def drift_panels() -> list:
    """A drift project's dashboard: run after run (dated by cutoff), the drifted share as bars (a bar's height
    reads where a line near 0 would not), the drifted column count, and each column's score."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel

    return [
        bar_plot_panel(title="Share of drifted columns", size="half", values=[
            PanelMetric(legend="share", metric=DRIFTED_COLUMNS_COUNT, metric_labels={"value_type": "share"})]),
        bar_plot_panel(title="Drifted columns", size="half", values=[
            PanelMetric(legend="columns", metric=DRIFTED_COLUMNS_COUNT, metric_labels={"value_type": "count"})]),
        line_plot_panel(
            title="Drift score per column",
            description="distance (drifts at >= 0.1) when the reference has > 1000 rows, else a p-value",
            values=[PanelMetric(legend="{{column}}", metric=VALUE_DRIFT)],  # no label filter: every column
        ),
    ]


def _create_project(ws: Any, name: str, panels: list | None = None) -> Any:
    """A new project with its dashboard (drift panels unless others are given)."""
    project = ws.create_project(name, description="The CLV platform's monitoring, one run per cutoff")
    for panel in panels if panels is not None else drift_panels():
        project.dashboard.add_panel(panel)
    return project


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most `max_rows` rows, drawn reproducibly; drift tests need a sample, not the whole table."""
    return frame if len(frame) <= max_rows else frame.sample(n=max_rows, random_state=seed)


def _prepare(frame: pd.DataFrame, numerical: list[str], categorical: list[str]) -> pd.DataFrame:
    """Plain dtypes Evidently handles the same way for every input: float64 numerics, object-of-str categoricals.

    Nullable (Int64, boolean, Float64) and pyarrow-backed columns become NaN-holding float64; +-inf becomes
    NaN (Evidently drops both). Categories become `str` so that, say, 1 in one frame and "1" in the other are
    the same category; missing values stay missing (None), not the string "nan".
    """
    out = {}
    for c in numerical:
        try:
            values = frame[c].to_numpy(dtype="float64", na_value=np.nan, copy=True)
        except (TypeError, ValueError) as e:
            raise ValueError(f"numerical column {c!r} holds non-numeric values") from e
        values[np.isinf(values)] = np.nan
        out[c] = pd.Series(values, index=frame.index)
    for c in categorical:
        out[c] = pd.Series(
            [None if _is_missing(v) else str(v) for v in frame[c].astype(object)], index=frame.index, dtype=object
        )
    return pd.DataFrame(out, index=frame.index)


def _is_missing(value: Any) -> bool:
    """None, NaN, pd.NA, NaT; list-like values (unhashable oddities) count as present."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))
