"""Training sets, the model zoo trained out of time, the production model and its promotion, customer scores.

Out of time: the zoo learns at t - 2H and is judged on (t - H, t] (orchestration/assets/evaluation.py), a window it
never saw; the best servable recipe is retrained at t - H (labels up to t), kept as a new version, and promoted to
champion only if it beats the current one on the backtest. The champion scores every customer at t.
"""

import json
import shutil

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext
from dagster_dbt import get_asset_key_for_model

from ml import pipeline, registry, settings
from ml.model import ClvModel
from ml.zoo import DESCRIPTIONS
from orchestration.assets.evaluation import backtest_dir, model_evaluation, read_backtest_summary
from orchestration.assets.transform import clv_dbt_models
from orchestration.resources import ClvConfig, Warehouse

DBT_MARTS = [get_asset_key_for_model([clv_dbt_models], m)
             for m in ("customer_features", "customer_labels", "customer_lifecycle", "customer_sequences")]

# model_evaluation lives in evaluation.py; it is re-exported here beside the assets it sits between
__all__ = ["training_set", "backtest_model", "model_evaluation", "clv_model", "customer_scores", "datasets_dir"]


def datasets_dir():
    return settings.datasets_dir()


def production_dir():
    """The champion's files: what scores customers and what is published (a copy of registry.champion_dir())."""
    return settings.models_dir() / "production"


@dg.asset(deps=DBT_MARTS, group_name="modeling", kinds={"duckdb", "parquet"})
def training_set(clv: ClvConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """Labelled windows at t - 2H (train) and t - H (holdout), the unlabelled one at t (score), and the labelled
    windows a year before the holdout and before t, which calibrate the models to the season they will score."""
    cfg = clv.platform()
    with warehouse.connect(read_only=True) as con:
        windows = pipeline.load_windows(con, cfg.sequence_weeks, cfg.horizon_days)
    pipeline.save_windows(windows, datasets_dir())
    meta = {}
    for role, w in windows.roles().items():
        if w is None:
            meta[f"{role}_cutoff"] = "none: less than a year of labelled history"
            continue
        meta.update({f"{role}_cutoff": str(w.cutoff), f"{role}_customers": len(w)})
        if w.labels is not None:
            meta.update({f"{role}_returned_share": float(w.labels["returned"].mean()),
                         f"{role}_mean_future_value": float(w.y.mean())})
    return dg.MaterializeResult(metadata=meta)


@dg.asset(deps=[training_set], group_name="modeling", kinds={"pytorch", "scikitlearn"})
def backtest_model(context: AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    """The whole zoo trained at t - 2H on the same rows (the deep model with a budgeted hyperparameter search),
    each calibrated on the year before the holdout; judged by model_evaluation."""
    cfg = clv.platform()
    windows = pipeline.read_windows(datasets_dir())
    result = pipeline.fit_backtest(windows, cfg.horizon_days, cfg.training, progress=context.log.info)
    folder = backtest_dir()
    shutil.rmtree(folder, ignore_errors=True)
    for name, model in result.models.items():
        model.save(folder / name)
    (folder / "zoo.json").write_text(json.dumps(
        {"seconds": result.seconds, "failures": result.failures, "search_trials": result.search_trials}, indent=1))
    table = pd.DataFrame([{"model": n, "what": DESCRIPTIONS[n], "train_seconds": result.seconds.get(n),
                           "calibration": round(float(m.info.get("calibration", 1.0)), 3)}
                          for n, m in result.models.items()])
    meta = {
        "train_cutoff": str(windows.train.cutoff),
        "calibration_window": str(windows.year_ago_holdout.cutoff) if windows.year_ago_holdout else "none",
        "models_trained": len(result.models),
        "models": dg.MetadataValue.md(table.to_markdown(index=False)),
        "failures": dg.MetadataValue.md("\n".join(f"- {k}: {v}" for k, v in result.failures.items()) or "none"),
    }
    if result.search_trials:
        meta["search_trials"] = dg.MetadataValue.md(pd.DataFrame(result.search_trials).to_markdown(index=False))
    return dg.MaterializeResult(metadata=meta)


@dg.asset(deps=[training_set, model_evaluation], group_name="modeling", kinds={"pytorch"})
def clv_model(context: AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    """The backtest's best servable recipe retrained at t - H, kept as a new version; promoted to champion only if
    it beats the champion on the backtest by training.promotion_margin. The champion scores and is served."""
    cfg = clv.platform()
    windows = pipeline.read_windows(datasets_dir())
    summary = read_backtest_summary()
    backtest = ClvModel.load(backtest_dir() / summary["challenger"])
    production = pipeline.fit_production(backtest, windows, cfg.horizon_days, cfg.training, progress=context.log.info)
    version = registry.new_version(backtest.name)
    registry.register(version, production, backtest, {
        "model": backtest.name, "as_of": cfg.as_of, "horizon_days": cfg.horizon_days,
        "backtest_cutoff": str(windows.train.cutoff), "holdout_cutoff": str(windows.holdout.cutoff),
        "production_cutoff": str(windows.holdout.cutoff), "metrics": summary["metrics"],
        "calibration": production.info.get("calibration"), "hyperparameters": production.info.get("config"),
    })
    # the drift reference: the features this version learned from (a seeded sample: the drift check samples
    # 20k rows anyway), kept with it so monitoring compares against them for as long as it serves
    learned = windows.holdout.features
    learned.sample(n=min(len(learned), 20_000), random_state=0).to_parquet(
        registry.registry_dir() / version / "model" / "reference_features.parquet")
    decision = registry.decide(version, windows.holdout, cfg.horizon_days, cfg.training.promotion_margin)
    registry.promote(version, decision)
    registry.publish_champion(production_dir())
    history = pd.DataFrame([{"version": r["version"], "model": r["model"], "as_of": r["as_of"],
                             "backtest_gini": round(r["metrics"]["normalized_gini"], 4), "promoted": r["promoted"]}
                            for r in registry.versions()[-10:]])
    return dg.MaterializeResult(metadata={
        "version": version,
        "model": backtest.name,
        "promoted": decision.promote,
        "decision": decision.reason,
        "champion": registry.champion_version(),
        "challenger_backtest_gini": decision.challenger_gini,
        "champion_backtest_gini": decision.champion_gini if decision.champion_gini is not None else decision.challenger_gini,
        "train_cutoff": str(windows.holdout.cutoff),
        "calibration": float(production.info.get("calibration", 1.0)),
        "calibration_note": str(production.info.get("calibration_note", "")),
        "versions": dg.MetadataValue.md(history.to_markdown(index=False)),
    })


@dg.asset(deps=[clv_model], group_name="scoring", kinds={"duckdb"}, pool="duckdb")
def customer_scores(clv: ClvConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """Every customer at t, by the champion: expected value over the horizon, return probability, value interval,
    lifecycle stage, and the three reasons that moved the prediction most."""
    window = pipeline.read_windows(datasets_dir()).score
    model = ClvModel.load(production_dir())
    scores = pipeline.score_frame(model, window)
    with warehouse.connect() as con:
        con.register("scores_df", scores)
        con.execute("CREATE OR REPLACE TABLE main.customer_scores AS SELECT * FROM scores_df")
    stages = scores["lifecycle_stage"].value_counts().to_dict()
    top = scores.nlargest(10, "predicted_value")
    return dg.MaterializeResult(metadata={
        "customers": len(scores),
        "model": model.name,
        "model_version": str(model.info.get("model_id", "")),
        "total_predicted_value": float(scores["predicted_value"].sum()),
        "mean_p_return": float(scores["p_return"].mean()),
        **{f"stage_{k}": int(v) for k, v in stages.items()},
        "preview": dg.MetadataValue.md(top.drop(columns=["cutoff_date"]).round(3).to_markdown(index=False)),
    })
