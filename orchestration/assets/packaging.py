"""Packaging: the champion and the scoring snapshot into the BentoML model store, where the API picks it up."""

import dagster as dg

from ml import pipeline, registry
from ml.data.windows import read_window
from orchestration.assets.modeling import customer_scores, datasets_dir, model_evaluation, production_dir
from orchestration.partitions import CUTOFFS, ONE_CUTOFF_PER_RUN
from serving import store

SHOWN_METRICS = ("normalized_gini", "spearman", "total_error", "return_auc")


@dg.asset(deps=[customer_scores, model_evaluation], group_name="serving", kinds={"bentoml"}, partitions_def=CUTOFFS,
          backfill_policy=ONE_CUTOFF_PER_RUN)
def served_model(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """A new version of `clv_model` when it changes what the API serves: the champion with the cutoff's snapshot.
    The running API serves the latest. Rescoring an older cutoff (a backfill), or the same champion on the same
    snapshot again, publishes nothing."""
    champion = registry.champion_version()
    backtest = registry.record(champion)["metrics"] if champion else {}
    metrics = {f"champion_backtest_{k}": float(backtest[k]) for k in SHOWN_METRICS if backtest.get(k) is not None}
    snapshot = read_window(datasets_dir(context.partition_key) / "score")
    skip = store.why_not_publish(production_dir(), snapshot)
    if skip:
        return dg.MaterializeResult(metadata={"published": False, "why": skip, "tag": store.latest_tag() or "none",
                                              "champion": champion or "none", **metrics})
    scored = pipeline.read_scores(datasets_dir(context.partition_key))
    tag = store.publish(production_dir(), snapshot, {"champion": champion or "", **metrics}, scored=scored)
    return dg.MaterializeResult(metadata={"published": True, "tag": tag, "champion": champion or "none",
                                          "answers_from": store.answers_from(tag), **metrics})
