"""Training sets, the model zoo trained out of time, the production model and its promotion, customer scores.

Out of time: the zoo learns at t - 2H and is judged on (t - H, t] (orchestration/assets/evaluation.py), a window it
never saw; the best servable recipe is retrained at t - H (labels up to t), kept as a new version, and promoted to
champion only if it beats the current one on the backtest. The champion scores every customer at t.
"""

import json
import shutil
from datetime import date, timedelta

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext
from dagster_dbt import get_asset_key_for_model

from ml.data import build
from ml import pipeline, registry, settings
from ml.evaluation.leaderboard import to_records
from ml.models.zoo import DESCRIPTIONS, load_model
from orchestration.assets.evaluation import backtest_dir, model_evaluation, read_backtest_summary
from orchestration.assets.transform import clv_dbt_models
from orchestration.executor import OPENS_WAREHOUSE
from orchestration.partitions import CUTOFFS, ONE_CUTOFF_PER_RUN
from orchestration.resources import ClvConfig, Warehouse

DBT_MARTS = [get_asset_key_for_model([clv_dbt_models], m)
             for m in ("customer_features", "customer_labels", "customer_lifecycle", "customer_sequences",
                       "customer_events")]

# model_evaluation lives in evaluation.py; it is re-exported here beside the assets it sits between
__all__ = ["training_set", "backtest_model", "model_evaluation", "clv_model", "customer_scores", "datasets_dir"]


def datasets_dir(cutoff: str):
    """The windows of one cutoff's run (ml.pipeline.Windows)."""
    return settings.datasets_dir() / cutoff


def production_dir():
    """The champion's files: what scores customers and what is published (a copy of registry.champion_dir())."""
    return settings.models_dir() / "production"


@dg.asset(deps=DBT_MARTS, group_name="modeling", kinds={"duckdb", "parquet"}, op_tags=OPENS_WAREHOUSE,
          partitions_def=CUTOFFS, backfill_policy=ONE_CUTOFF_PER_RUN)
def training_set(context: AssetExecutionContext, clv: ClvConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """The run's windows (ml/data/plan.py): every backtest fold's train and eval cutoffs, production at t - H, the
    unlabelled score window at t, and the labelled windows a year earlier that calibrate to the season."""
    cfg = clv.platform(context.partition_key)
    with warehouse.connect(read_only=True) as con:
        plan = build.window_plan(con, cfg.as_of_date, cfg.horizon_days, cfg.training.backtest_folds)
        windows = pipeline.load_windows(con, cfg.sequence_weeks, plan.describe())
    pipeline.save_windows(windows, datasets_dir(context.partition_key))
    meta = {"backtest_horizon_days": plan.backtest_horizon_days, "backtest_folds": len(windows.folds),
            "plan_notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in plan.notes) or "the full plan fits"),
            "event_stream_length": int(windows.score.events.shape[1])}
    for role, w in windows.roles().items():
        if w is None:
            meta[f"{role}_cutoff"] = "none"
            continue
        meta.update({f"{role}_cutoff": str(w.cutoff), f"{role}_customers": len(w)})
        if w.labels is not None:
            meta.update({f"{role}_returned_share": float(w.labels["returned"].mean()),
                         f"{role}_mean_future_value": float(w.y.mean())})
    return dg.MaterializeResult(metadata=meta)


@dg.asset(deps=[training_set], group_name="modeling", kinds={"pytorch", "scikitlearn"}, partitions_def=CUTOFFS,
          backfill_policy=ONE_CUTOFF_PER_RUN)
def backtest_model(context: AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    """The whole zoo trained on every backtest fold on the same rows (fold 0 with the deep model's budgeted
    hyperparameter search, calibrated on the year before its eval cutoff); judged by model_evaluation. With
    training.processes > 1 each deep training is a torchrun subprocess of this step (ml/models/distributed.py)."""
    cfg = clv.platform(context.partition_key)
    windows = pipeline.read_windows(datasets_dir(context.partition_key))
    backtest = pipeline.fit_backtest(windows, cfg.training, progress=context.log.info)
    result = backtest.folds[0]
    first, predictions, ginis = pipeline.judge_backtest(backtest, windows, progress=context.log.info)
    folder = backtest_dir(context.partition_key)
    shutil.rmtree(folder, ignore_errors=True)
    for name, model in result.models.items():
        model.save(folder / name)
    pipeline.save_holdout_predictions(predictions, windows.holdout, folder)  # model_evaluation's leaderboard
    (folder / "zoo.json").write_text(json.dumps(
        {"seconds": result.seconds, "failures": result.failures, "search_trials": result.search_trials,
         "fold_ginis": to_records(ginis), "notes": backtest.notes}, indent=1))
    table = pd.DataFrame([{"model": n, "what": DESCRIPTIONS[n], "train_seconds": result.seconds.get(n),
                           "calibration": round(float(m.info.get("calibration", 1.0)), 3)}
                          for n, m in result.models.items()])
    meta = {
        "train_cutoff": str(windows.train.cutoff),
        "backtest_horizon_days": windows.backtest_horizon_days,
        "folds": len(backtest.folds),
        "calibration_window": str(windows.calibration_eval.cutoff) if windows.calibration_eval else "none",
        "models_trained": len(result.models),
        "training_rows": result.rows,  # fold 0's; fewer than its customers when training.max_rows caps them
        "training_rows_available": result.rows_available,
        "training_processes": cfg.training.processes,
        "models": dg.MetadataValue.md(table.to_markdown(index=False)),
        "gini_by_fold": dg.MetadataValue.md(ginis.round(4).to_markdown(index=False)),
        "failures": dg.MetadataValue.md("\n".join(f"- {k}: {v}" for k, v in result.failures.items()) or "none"),
        "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in backtest.notes) or "none"),
    }
    if result.search_trials:
        meta["search_trials"] = dg.MetadataValue.md(pd.DataFrame(result.search_trials).to_markdown(index=False))
    return dg.MaterializeResult(metadata=meta)


@dg.asset(deps=[training_set, model_evaluation], group_name="modeling", kinds={"pytorch"}, partitions_def=CUTOFFS,
          backfill_policy=ONE_CUTOFF_PER_RUN)
def clv_model(context: AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    """The backtest's best servable recipe retrained at t - H (the next best when it cannot be trained there),
    kept as a new version; promoted to champion only if it beats the champion on the backtest by
    training.promotion_margin. The champion scores and is served."""
    cutoff = context.partition_key
    cfg = clv.platform(cutoff)
    windows = pipeline.read_windows(datasets_dir(cutoff))
    summary = read_backtest_summary(cutoff)
    order = summary["order"]
    backtests = {n: load_model(backtest_dir(cutoff) / n) for n in order}
    production, gave_way = pipeline.fit_champion(order, backtests, windows, cfg.horizon_days, cfg.training,
                                                 progress=context.log.info)
    backtest = backtests[production.name]
    metrics = next(r for r in summary["leaderboard"] if r["model"] == backtest.name)
    version = registry.new_version(backtest.name)
    # what its scores may be judged on: only labels after production_cutoff + horizon are unseen
    production.info.update(production_cutoff=str(windows.production.cutoff), horizon_days=cfg.horizon_days)
    registry.register(version, production, backtest, {
        "model": backtest.name, "as_of": cutoff, "horizon_days": cfg.horizon_days,
        "backtest_horizon_days": windows.backtest_horizon_days,
        "backtest_cutoff": str(windows.train.cutoff), "holdout_cutoff": str(windows.holdout.cutoff),
        "production_cutoff": str(windows.production.cutoff), "metrics": metrics,
        "calibration": production.info.get("calibration"), "hyperparameters": production.info.get("config"),
    })
    # the drift reference: the features this version learned from (a seeded sample: the drift check samples
    # 20k rows anyway), kept with it so monitoring compares against them for as long as it serves
    learned = windows.production.features
    learned.sample(n=min(len(learned), 20_000), random_state=0).to_parquet(
        registry.registry_dir() / version / "model" / "reference_features.parquet")
    decision = registry.decide(version, windows.holdout, windows.backtest_horizon_days,
                               cfg.training.promotion_margin)
    registry.promote(version, decision)
    registry.publish_champion(production_dir())
    history = pd.DataFrame([{"version": r["version"], "model": r["model"], "as_of": r["as_of"],
                             "backtest_gini": round(r["metrics"]["normalized_gini"], 4), "promoted": r["promoted"]}
                            for r in registry.versions()[-10:]])
    return dg.MaterializeResult(metadata={
        "version": version,
        "model": backtest.name,
        "chosen_on_backtest": order[0],
        "gave_way": dg.MetadataValue.md("\n".join(f"- {n}" for n in gave_way) or "none"),
        "promoted": decision.promote,
        "decision": decision.reason,
        "champion": registry.champion_version(),
        "challenger_backtest_gini": decision.challenger_gini,
        "champion_backtest_gini": decision.champion_gini if decision.champion_gini is not None else decision.challenger_gini,
        "train_cutoff": str(windows.production.cutoff),
        "training_rows": int(production.info.get("train_rows", len(windows.production))),
        "training_processes": int(production.info.get("distributed", {}).get("processes", 1)),
        "calibration": float(production.info.get("calibration", 1.0)),
        "calibration_note": str(production.info.get("calibration_note", "")),
        "versions": dg.MetadataValue.md(history.to_markdown(index=False)),
    })


@dg.asset(deps=[clv_model, training_set], group_name="scoring", kinds={"duckdb"}, op_tags=OPENS_WAREHOUSE,
          partitions_def=CUTOFFS, backfill_policy=ONE_CUTOFF_PER_RUN)
def customer_scores(context: AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Every customer at the cutoff, by the champion: expected value over the horizon, return probability, value
    interval, lifecycle stage, and the three reasons that moved the prediction most (in words, and as JSON in
    `reason_details`). One table holds every cutoff's scores (with the model version that made them), so they can
    be judged once their horizon passed."""
    cutoff = context.partition_key
    window = pipeline.read_windows(datasets_dir(cutoff)).score
    model = load_model(production_dir())
    info = model.info
    labels_until = date.fromisoformat(info["production_cutoff"]) + timedelta(days=int(info["horizon_days"])) \
        if info.get("production_cutoff") else None
    scores = pipeline.score_frame(model, window).assign(
        model_version=str(info.get("model_id", "")), backtest_gini=info.get("backtest_normalized_gini"),
        model_labels_until=labels_until)
    pipeline.save_scores(scores, datasets_dir(cutoff))  # served_model publishes these answers, not new ones
    with warehouse.connect() as con:
        con.register("scores_df", scores)
        con.execute("CREATE TABLE IF NOT EXISTS main.customer_scores AS SELECT * FROM scores_df WHERE false")
        have = {r[0] for r in con.execute("DESCRIBE main.customer_scores").fetchall()}
        for name, kind, *_ in con.execute("DESCRIBE scores_df").fetchall():  # a table kept from an older version
            if name not in have:
                con.execute(f'ALTER TABLE main.customer_scores ADD COLUMN "{name}" {kind}')
        con.execute("BEGIN")
        con.execute("DELETE FROM main.customer_scores WHERE cutoff_date = ?", [window.cutoff])
        con.execute("INSERT INTO main.customer_scores BY NAME SELECT * FROM scores_df")
        con.execute("COMMIT")
        kept = con.execute("SELECT count(DISTINCT cutoff_date) FROM main.customer_scores").fetchone()[0]
    stages = scores["lifecycle_stage"].value_counts().to_dict()
    top = scores.nlargest(10, "predicted_value")
    return dg.MaterializeResult(metadata={
        "cutoff": cutoff,
        "customers": len(scores),
        "cutoffs_kept": kept,
        "model": model.name,
        "model_version": str(model.info.get("model_id", "")),
        "total_predicted_value": float(scores["predicted_value"].sum()),
        "mean_p_return": float(scores["p_return"].mean()),
        **{f"stage_{k}": int(v) for k, v in stages.items()},
        "preview": dg.MetadataValue.md(top.drop(columns=["cutoff_date", "reason_details"]).round(3)
                                       .to_markdown(index=False)),
    })
