"""Drift: the features of now against the features the serving model was trained on (Evidently)."""

import dagster as dg

from ml import settings
from ml.drift import feature_drift
from ml.model import ClvModel
from ml.preprocess import Preprocessor
from ml.windows import CATEGORICAL, read_window
from orchestration.assets.modeling import clv_model, datasets_dir, training_set
from orchestration.resources import ClvConfig


def drift_columns(prep: Preprocessor) -> tuple[list[str], list[str]]:
    """The columns the model reads: numeric features and categorical context."""
    return list(prep.numeric), [c for c in CATEGORICAL if c in prep.categorical]


@dg.asset(deps=[training_set, clv_model], group_name="monitoring", kinds={"evidently"})
def feature_drift_report(clv: ClvConfig) -> dg.MaterializeResult:
    """Evidently data-drift report, scoring window (t) vs the production model's training window (t - H)."""
    cfg = clv.platform()
    model = ClvModel.load(settings.models_dir() / "production")
    reference = read_window(datasets_dir() / "holdout").features
    current = read_window(datasets_dir() / "score").features
    numerical, categorical = drift_columns(model.prep)
    html = settings.reports_dir() / f"feature_drift_{cfg.as_of}.html"
    result = feature_drift(reference, current, numerical, categorical, html_path=html,
                           workspace=settings.clv_home() / "evidently")
    return dg.MaterializeResult(metadata={
        "as_of": cfg.as_of,
        "drift_share": result.share,
        "drifted_columns": result.n_drifted,
        "columns_checked": result.n_columns,
        "drift_threshold": cfg.drift_threshold,
        "drifted": result.share >= cfg.drift_threshold,
        "drifted_column_names": ", ".join(result.drifted_columns) or "none",
        "report": dg.MetadataValue.path(str(html)),
    })
