"""Monitoring: feature drift, prediction drift and matured performance of the served model (Evidently).

Each report keeps its HTML under reports/ and adds its snapshot to the Evidently workspace (`make evidently-ui`).
Asset checks grade the figures (WARN early, ERROR at the retraining threshold); the retrain sensor acts on them.
"""
from datetime import date, datetime, time, timezone

import dagster as dg
import pandas as pd

from ml import settings
from ml.monitoring.drift import CLOCK_COLUMNS, drift_columns, feature_drift, prediction_drift
from ml.models.zoo import load_model
from ml.monitoring.performance import matured_performance
from ml.data.windows import read_window
from ml.data.plan import matured_cutoff
from orchestration.assets.evaluation import reports_dir
from orchestration.assets.modeling import clv_model, customer_scores, datasets_dir, training_set
from orchestration.executor import OPENS_WAREHOUSE, WRITES_EVIDENTLY
from orchestration.partitions import CUTOFFS, ONE_CUTOFF_PER_RUN
from orchestration.resources import ClvConfig, Warehouse

WORKSPACE = "evidently"
WARN_AT = 0.75  # share of a threshold at which a check warns
DRIFT_CHECKS = [
    dg.AssetCheckSpec("drift_share_warning", asset="feature_drift_report",
                      description="WARN when the drifted share reaches 3/4 of the retraining threshold"),
    dg.AssetCheckSpec("drift_share_critical", asset="feature_drift_report",
                      description="ERROR when the drifted share reaches the retraining threshold"),
]
DECAY_CHECKS = [
    dg.AssetCheckSpec("gini_decay_warning", asset="model_performance",
                      description="WARN when matured Gini is below the backtest's by 3/4 of the decay threshold"),
    dg.AssetCheckSpec("gini_decay_critical", asset="model_performance",
                      description="ERROR when matured Gini is below the backtest's by the decay threshold"),
]


def serving_model_dir():
    """The model that scores customers now, whose training data is the drift reference."""
    return settings.models_dir() / "production"


def training_reference(cutoff: str):
    """The features the serving model was trained on: kept beside it, else the cutoff's production window."""
    kept = serving_model_dir() / "reference_features.parquet"
    return pd.read_parquet(kept) if kept.exists() else read_window(datasets_dir(cutoff) / "production").features


def graded_checks(value: float | None, threshold: float, names: list[str], what: str,
                  why_unmeasured: str = "") -> list[dg.AssetCheckResult]:
    """Two checks on one figure: a warning at 3/4 of the threshold, an error at the threshold. A figure that could
    not be measured is not a pass: both checks fail at WARN severity, saying why (`measured: false`)."""
    if value is None:
        note = f"{what} not measured: {why_unmeasured or 'no value'}"
        return [dg.AssetCheckResult(check_name=n, passed=False, severity=dg.AssetCheckSeverity.WARN,
                                    metadata={"measured": False, "note": note}) for n in names]
    return [
        dg.AssetCheckResult(check_name=names[0], passed=value < WARN_AT * threshold,
                            severity=dg.AssetCheckSeverity.WARN, metadata={what: value, "warn_at": WARN_AT * threshold}),
        dg.AssetCheckResult(check_name=names[1], passed=value < threshold, severity=dg.AssetCheckSeverity.ERROR,
                            metadata={what: value, "error_at": threshold}),
    ]


def _scores_table(scores: dict[str, float], top: int = 15) -> str:
    frame = pd.DataFrame(sorted(scores.items(), key=lambda kv: -kv[1])[:top], columns=["column", "drift score"])
    return frame.round(4).to_markdown(index=False)


def _cutoff_time(cutoff: str) -> datetime:
    """An Evidently run is dated by the cutoff it judges, so a backfill draws its history in order."""
    return datetime.combine(date.fromisoformat(cutoff), time(), tzinfo=timezone.utc)


@dg.asset(deps=[training_set, clv_model], group_name="monitoring", kinds={"evidently"}, check_specs=DRIFT_CHECKS,
          op_tags=WRITES_EVIDENTLY, partitions_def=CUTOFFS,
          backfill_policy=ONE_CUTOFF_PER_RUN)
def feature_drift_report(context: dg.AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    """Evidently data drift: the features at the cutoff vs the features the serving model was trained on."""
    cutoff = context.partition_key
    cfg = clv.platform(cutoff)
    model = load_model(serving_model_dir())
    reference = training_reference(cutoff)
    current = read_window(datasets_dir(cutoff) / "score").features
    numerical, categorical = drift_columns(model)
    html = reports_dir(cutoff) / "feature_drift.html"
    result = feature_drift(reference, current, numerical, categorical, html_path=html,
                           workspace=settings.clv_home() / WORKSPACE, drift_share=cfg.drift_threshold,
                           timestamp=_cutoff_time(cutoff))
    return dg.MaterializeResult(
        metadata={
            "as_of": cutoff,
            "drift_share": result.share,
            "drifted_columns": result.n_drifted,
            "columns_checked": result.n_columns,
            "drift_threshold": cfg.drift_threshold,
            "drifted": result.share >= cfg.drift_threshold,
            "drifted_column_names": ", ".join(result.drifted_columns) or "none",
            "model_version": str(model.info.get("model_id", "")),
            "clock_columns_left_out": ", ".join(sorted(CLOCK_COLUMNS & set(model.prep.numeric))),
            "column_scores": dg.MetadataValue.md(_scores_table(result.column_scores)),
            "report": dg.MetadataValue.path(str(html)),
        },
        check_results=graded_checks(result.share, cfg.drift_threshold, [c.name for c in DRIFT_CHECKS], "drift_share"),
    )


@dg.asset(deps=[customer_scores, clv_model], group_name="monitoring", kinds={"evidently"}, partitions_def=CUTOFFS,
          op_tags={**OPENS_WAREHOUSE, **WRITES_EVIDENTLY}, backfill_policy=ONE_CUTOFF_PER_RUN)
def prediction_drift_report(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Evidently drift of the outputs: predicted value and return probability at the cutoff vs on the window the
    serving model learned from."""
    cutoff = context.partition_key
    model = load_model(serving_model_dir())
    train = read_window(datasets_dir(cutoff) / "production")
    reference = model.predict(train.features, train.sequences, train.events)
    with warehouse.connect(read_only=True) as con:
        current = con.execute("SELECT predicted_value, p_return FROM main.customer_scores WHERE cutoff_date = ?",
                              [date.fromisoformat(cutoff)]).df()
    html = reports_dir(cutoff) / "prediction_drift.html"
    result = prediction_drift(reference, current, html_path=html, workspace=settings.clv_home() / WORKSPACE,
                              timestamp=_cutoff_time(cutoff))
    return dg.MaterializeResult(metadata={
        "as_of": cutoff,
        "drift_share": result.share,
        "drifted_outputs": ", ".join(result.drifted_columns) or "none",
        "mean_predicted_value_reference": float(reference["predicted_value"].mean()),
        "mean_predicted_value_now": float(current["predicted_value"].mean()),
        "column_scores": dg.MetadataValue.md(_scores_table(result.column_scores)),
        "report": dg.MetadataValue.path(str(html)),
    })


@dg.asset(deps=[customer_scores, "customer_labels"], group_name="monitoring", kinds={"evidently"},
          check_specs=DECAY_CHECKS, op_tags={**OPENS_WAREHOUSE, **WRITES_EVIDENTLY}, partitions_def=CUTOFFS,
          backfill_policy=ONE_CUTOFF_PER_RUN)
def model_performance(context: dg.AssetExecutionContext, clv: ClvConfig,
                      warehouse: Warehouse) -> dg.MaterializeResult:
    """The scores made at the newest cutoff one horizon back, against what those customers did since
    (regression + classification): the matured Gini, total error and return AUC of the model that made them."""
    cutoff = context.partition_key
    cfg = clv.platform(cutoff)
    cut = cfg.cutoffs
    matured = matured_cutoff(cfg.as_of_date, cfg.horizon_days, cut.first_date, cut.period_days)
    base = {"as_of": cutoff, "matured_cutoff": str(matured), "decay_threshold": cfg.decay_threshold}
    names = [c.name for c in DECAY_CHECKS]
    scores = labels = pd.DataFrame()
    if matured is not None:
        with warehouse.connect(read_only=True) as con:
            scores = con.execute("SELECT * FROM main.customer_scores WHERE cutoff_date = ?", [matured]).df()
            labels = con.execute("SELECT * FROM main.customer_labels WHERE cutoff_date = ? AND horizon_days = ?",
                                 [matured, cfg.horizon_days]).df()
    why = _unmeasured(matured, scores, labels)
    if why:
        return dg.MaterializeResult(metadata={**base, "status": why},
                                    check_results=graded_checks(None, cfg.decay_threshold, names, "gini_decay", why))
    html = reports_dir(cutoff) / "performance.html"
    result = matured_performance(scores, labels, html_path=html, workspace=settings.clv_home() / WORKSPACE,
                                 timestamp=_cutoff_time(cutoff))
    gini = result.metrics["normalized_gini"]
    expected = scores["backtest_gini"].dropna()
    decay = float(1 - gini / expected.iloc[0]) if len(expected) and expected.iloc[0] else None
    return dg.MaterializeResult(
        metadata={**base, "status": "measured", "customers": result.n_customers,
                  "model_version": str(scores["model_version"].iloc[0]),
                  "matured_normalized_gini": gini,
                  "backtest_normalized_gini": None if expected.empty else float(expected.iloc[0]),
                  "gini_decay": decay, "matured_total_error": result.metrics["total_error"],
                  "matured_return_auc": result.metrics.get("return_auc"), "report": dg.MetadataValue.path(str(html))},
        check_results=graded_checks(decay, cfg.decay_threshold, names, "gini_decay",
                                    "the model's backtest Gini is not recorded"))


def _unmeasured(matured: date | None, scores: pd.DataFrame, labels: pd.DataFrame) -> str | None:
    """Why the scores at `matured` cannot be judged (None: they can)."""
    if matured is None:
        return "no cutoff one horizon back: performance is measured once the first scores mature"
    if scores.empty:
        return f"no scores at {matured} (materialize that partition to judge it at this one)"
    if labels.empty:
        return f"no labels for {matured} in the warehouse"
    seen = scores["model_labels_until"].dropna()
    if len(seen) and pd.Timestamp(seen.iloc[0]).date() > matured:
        return (f"the scores at {matured} came from a model that learned from labels up to {seen.iloc[0]:%Y-%m-%d}: "
                "judging them would be judging it on its own training data")
    return None
