"""Packaging: the production model and the scoring snapshot into the BentoML model store."""

import dagster as dg
from dagster import AssetExecutionContext

from ml import settings
from ml.windows import read_window
from orchestration.assets.modeling import customer_scores, datasets_dir, model_evaluation
from serving import store


@dg.asset(deps=[customer_scores, model_evaluation], group_name="serving", kinds={"bentoml"})
def served_model(context: AssetExecutionContext) -> dg.MaterializeResult:
    """A new version of `clv_model` in the BentoML store; the prediction API serves the latest."""
    evaluation = context.instance.get_latest_materialization_event(model_evaluation.key)
    metrics = {}
    if evaluation is not None:
        md = evaluation.asset_materialization.metadata
        metrics = {k: md[k].value for k in ("model_normalized_gini", "baseline_normalized_gini") if k in md}
    tag = store.publish(settings.models_dir() / "production", read_window(datasets_dir() / "score"), metrics)
    return dg.MaterializeResult(metadata={"tag": tag, **metrics})
