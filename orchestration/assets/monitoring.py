"""Monitoring: feature drift, prediction drift and matured performance of the served model (Evidently).

Each report keeps its HTML under reports/ and adds its snapshot to the Evidently workspace (`make evidently-ui`).
Asset checks grade the figures (WARN early, ERROR at the retraining threshold); the retrain sensor acts on them.
"""
from datetime import date, timedelta

import dagster as dg
import pandas as pd

from ml import settings
from ml.drift import feature_drift, prediction_drift
from ml.model import ClvModel
from ml.zoo.btyd import FEATURES as DERIVED
from ml.performance import matured_performance
from ml.windows import CATEGORICAL, read_window
from orchestration.assets.modeling import clv_model, customer_scores, datasets_dir, training_set
from orchestration.resources import ClvConfig, Warehouse

WORKSPACE = "evidently"
# Features that grow with the calendar for every customer: between two cutoffs they drift because time passed,
# not because the shop changed, so they are left out of the drift check (and named in its metadata).
CLOCK_COLUMNS = frozenset({
    "tenure_days", "days_since_first_order", "btyd_age_days", "btyd_recency_days", "recency_days",
    "mean_interpurchase_days", "std_interpurchase_days", "days_since_last_event",
})
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


def training_reference():
    """The features the serving model was trained on: kept beside it, else the current production window."""
    kept = serving_model_dir() / "reference_features.parquet"
    return pd.read_parquet(kept) if kept.exists() else read_window(datasets_dir() / "production").features


def graded_checks(value: float | None, threshold: float, names: list[str], what: str) -> list[dg.AssetCheckResult]:
    """Two checks on one figure: a warning at 3/4 of the threshold, an error at the threshold."""
    if value is None:
        return [dg.AssetCheckResult(check_name=n, passed=True, metadata={"note": f"{what} not measured yet"})
                for n in names]
    return [
        dg.AssetCheckResult(check_name=names[0], passed=value < WARN_AT * threshold,
                            severity=dg.AssetCheckSeverity.WARN, metadata={what: value, "warn_at": WARN_AT * threshold}),
        dg.AssetCheckResult(check_name=names[1], passed=value < threshold, severity=dg.AssetCheckSeverity.ERROR,
                            metadata={what: value, "error_at": threshold}),
    ]


def _scores_table(scores: dict[str, float], top: int = 15) -> str:
    frame = pd.DataFrame(sorted(scores.items(), key=lambda kv: -kv[1])[:top], columns=["column", "drift score"])
    return frame.round(4).to_markdown(index=False)


@dg.asset(deps=[training_set, clv_model], group_name="monitoring", kinds={"evidently"}, check_specs=DRIFT_CHECKS)
def feature_drift_report(clv: ClvConfig) -> dg.MaterializeResult:
    """Evidently data drift: the features at t vs the features the serving model was trained on."""
    cfg = clv.platform()
    model = ClvModel.load(serving_model_dir())
    reference = training_reference()
    current = read_window(datasets_dir() / "score").features
    numerical = [c for c in model.prep.numeric if c not in CLOCK_COLUMNS and c not in DERIVED]
    categorical = [c for c in CATEGORICAL if c in model.prep.categorical]
    html = settings.reports_dir() / f"feature_drift_{cfg.as_of}.html"
    result = feature_drift(reference, current, numerical, categorical, html_path=html,
                           workspace=settings.clv_home() / WORKSPACE)
    return dg.MaterializeResult(
        metadata={
            "as_of": cfg.as_of,
            "drift_share": result.share,
            "drifted_columns": result.n_drifted,
            "columns_checked": result.n_columns,
            "drift_threshold": cfg.drift_threshold,
            "drifted": result.share >= cfg.drift_threshold,
            "drifted_column_names": ", ".join(result.drifted_columns) or "none",
            "clock_columns_left_out": ", ".join(sorted(CLOCK_COLUMNS & set(model.prep.numeric))),
            "column_scores": dg.MetadataValue.md(_scores_table(result.column_scores)),
            "report": dg.MetadataValue.path(str(html)),
        },
        check_results=graded_checks(result.share, cfg.drift_threshold, [c.name for c in DRIFT_CHECKS], "drift_share"),
    )


@dg.asset(deps=[customer_scores, clv_model], group_name="monitoring", kinds={"evidently"})
def prediction_drift_report(clv: ClvConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """Evidently drift of the outputs: predicted value and return probability at t vs on the training window."""
    cfg = clv.platform()
    model = ClvModel.load(serving_model_dir())
    train = read_window(datasets_dir() / "production")  # the window the serving model learned from
    reference = model.predict(train.features, train.sequences)
    with warehouse.connect(read_only=True) as con:
        current = con.execute("SELECT predicted_value, p_return FROM main.customer_scores").df()
    html = settings.reports_dir() / f"prediction_drift_{cfg.as_of}.html"
    result = prediction_drift(reference, current, html_path=html, workspace=settings.clv_home() / WORKSPACE)
    return dg.MaterializeResult(metadata={
        "as_of": cfg.as_of,
        "drift_share": result.share,
        "drifted_outputs": ", ".join(result.drifted_columns) or "none",
        "mean_predicted_value_reference": float(reference["predicted_value"].mean()),
        "mean_predicted_value_now": float(current["predicted_value"].mean()),
        "column_scores": dg.MetadataValue.md(_scores_table(result.column_scores)),
        "report": dg.MetadataValue.path(str(html)),
    })


@dg.asset(deps=[customer_scores], group_name="monitoring", kinds={"duckdb"}, pool="duckdb")
def score_history(clv: ClvConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """Every run's scores kept by cutoff, so they can be judged once their horizon has passed."""
    with warehouse.connect() as con:
        con.execute("""CREATE TABLE IF NOT EXISTS main.score_history AS
            SELECT *, CAST(NULL AS VARCHAR) AS model_version, CAST(NULL AS DOUBLE) AS backtest_gini
            FROM main.customer_scores WHERE false""")
        version, gini = _serving_model_facts()
        con.execute("DELETE FROM main.score_history WHERE cutoff_date IN (SELECT DISTINCT cutoff_date FROM main.customer_scores)")
        con.execute("INSERT INTO main.score_history BY NAME SELECT *, ? AS model_version, ? AS backtest_gini "
                    "FROM main.customer_scores", [version, gini])
        cutoffs = con.execute("SELECT count(DISTINCT cutoff_date), count(*) FROM main.score_history").fetchone()
    return dg.MaterializeResult(metadata={"as_of": clv.as_of, "cutoffs_kept": cutoffs[0], "rows": cutoffs[1]})


def _serving_model_facts() -> tuple[str, float | None]:
    info = ClvModel.load(serving_model_dir()).info
    return str(info.get("model_id", info.get("train_cutoff"))), info.get("backtest_normalized_gini")


@dg.asset(deps=[score_history, "customer_labels"], group_name="monitoring", kinds={"evidently"},
          check_specs=DECAY_CHECKS)
def model_performance(clv: ClvConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """The scores made one horizon ago against what those customers did since (regression + classification)."""
    cfg = clv.platform()
    matured = (cfg.as_of_date - timedelta(days=cfg.horizon_days))
    with warehouse.connect(read_only=True) as con:
        scores = con.execute("SELECT * FROM main.score_history WHERE cutoff_date = ?", [matured]).df()
        labels = con.execute("SELECT * FROM main.customer_labels WHERE cutoff_date = ? AND horizon_days = ?",
                             [matured, cfg.horizon_days]).df()
    base = {"as_of": cfg.as_of, "matured_cutoff": str(matured), "decay_threshold": cfg.decay_threshold}
    names = [c.name for c in DECAY_CHECKS]
    if scores.empty or labels.empty:
        return dg.MaterializeResult(
            metadata={**base, "status": f"no scores from {matured} yet: performance is measured once they mature"},
            check_results=graded_checks(None, cfg.decay_threshold, names, "gini_decay"))
    html = settings.reports_dir() / f"performance_{matured}.html"
    result = matured_performance(scores, labels, html_path=html, workspace=settings.clv_home() / WORKSPACE)
    gini = result.metrics["normalized_gini"]
    expected = scores["backtest_gini"].dropna()
    decay = float(1 - gini / expected.iloc[0]) if len(expected) and expected.iloc[0] else None
    return dg.MaterializeResult(
        metadata={**base, "status": "measured", "customers": result.n_customers, "model_version": str(scores["model_version"].iloc[0]),
                  "matured_normalized_gini": gini, "backtest_normalized_gini": None if expected.empty else float(expected.iloc[0]),
                  "gini_decay": decay, "matured_total_error": result.metrics["total_error"],
                  "matured_return_auc": result.metrics.get("return_auc"), "report": dg.MetadataValue.path(str(html))},
        check_results=graded_checks(decay, cfg.decay_threshold, names, "gini_decay"))
