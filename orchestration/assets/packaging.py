"""Packaging: the champion and the scoring snapshot into the BentoML model store, where the API picks it up."""

import dagster as dg

from ml import registry
from ml.windows import read_window
from orchestration.assets.modeling import customer_scores, datasets_dir, model_evaluation, production_dir
from serving import store

SHOWN_METRICS = ("normalized_gini", "spearman", "total_error", "return_auc")


@dg.asset(deps=[customer_scores, model_evaluation], group_name="serving", kinds={"bentoml"})
def served_model() -> dg.MaterializeResult:
    """A new version of `clv_model`: the champion with today's snapshot; the running API serves the latest."""
    champion = registry.champion_version()
    backtest = registry.record(champion)["metrics"] if champion else {}
    metrics = {f"champion_backtest_{k}": float(backtest[k]) for k in SHOWN_METRICS if backtest.get(k) is not None}
    tag = store.publish(production_dir(), read_window(datasets_dir() / "score"),
                        {"champion": champion or "", **metrics})
    return dg.MaterializeResult(metadata={"tag": tag, "champion": champion or "none", **metrics})
