"""Training sets, the ZILN model trained out of time, its evaluation against the baseline, and customer scores.

Out of time: the backtest model learns at cutoff t - 2H and is judged on (t - H, t], a window it never saw;
the production model learns at t - H (labels up to t) and scores every customer at t.
"""

import numpy as np
import pandas as pd
import dagster as dg
from dagster import AssetExecutionContext

from ml import settings
from ml.baselines import historic_spend_rate
from ml.metrics import evaluate
from ml.model import ClvModel
from ml.train import TrainConfig, train_model
from ml.windows import Window, cutoffs, load_window, read_window, save_window
from orchestration.assets.ingestion import export_folder
from orchestration.assets.transform import clv_dbt_models
from orchestration.resources import ClvConfig, Warehouse
from dagster_dbt import get_asset_key_for_model

DBT_MARTS = [get_asset_key_for_model([clv_dbt_models], m)
             for m in ("customer_features", "customer_labels", "customer_lifecycle", "customer_sequences")]


def datasets_dir():
    return settings.clv_home() / "datasets"


def window_summary(w: Window) -> dict:
    meta = {"cutoff": str(w.cutoff), "customers": len(w)}
    if w.labels is not None:
        meta.update(returned_share=float(w.labels["returned"].mean()), mean_future_value=float(w.y.mean()))
    return meta


@dg.asset(deps=DBT_MARTS, group_name="modeling", kinds={"duckdb", "parquet"})
def training_set(clv: ClvConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """Labelled windows at t - 2H (train) and t - H (holdout), and the unlabelled scoring window at t."""
    cfg = clv.platform()
    meta = {}
    with warehouse.connect(read_only=True) as con:
        roles = cutoffs(con)
        for role in ("train", "holdout", "score"):
            w = load_window(con, roles[role][-1], cfg.sequence_weeks)
            save_window(w, datasets_dir() / role)
            meta.update({f"{role}_{k}": v for k, v in window_summary(w).items()})
    return dg.MaterializeResult(metadata=meta)


def _fit(window: Window, context: AssetExecutionContext, cfg: settings.PlatformConfig) -> ClvModel:
    model = train_model(window, TrainConfig(), progress=lambda e, tr, va: context.log.info(
        f"epoch {e}: train loss {tr:.4f}, validation loss {va:.4f}"))
    model.info["horizon_days"] = cfg.horizon_days
    return model


def _model_meta(model: ClvModel) -> dict:
    keys = ("train_cutoff", "n_train", "epochs", "best_val_loss", "train_seconds", "device")
    return {k: model.info[k] for k in keys}


@dg.asset(deps=[training_set], group_name="modeling", kinds={"pytorch"})
def backtest_model(context: AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    """The ZILN network trained at t - 2H, kept to be judged on the holdout window it never saw."""
    model = _fit(read_window(datasets_dir() / "train"), context, clv.platform())
    model.save(settings.models_dir() / "backtest")
    return dg.MaterializeResult(metadata=_model_meta(model))


def oracle_values(cfg: settings.PlatformConfig, window: Window) -> np.ndarray | None:
    """The simulator's true expected value per customer at the window's cutoff (None for a user's shop)."""
    path = export_folder(cfg) / "truth.parquet"
    if not path.exists():
        return None
    truth = pd.read_parquet(path)
    truth = truth[truth["cutoff_date"].dt.date == window.cutoff].set_index("customer_id")["expected_value"]
    values = truth.reindex(window.customer_ids)
    return None if values.isna().any() else values.to_numpy()


@dg.asset(deps=[backtest_model], group_name="modeling", kinds={"python"})
def model_evaluation(clv: ClvConfig) -> dg.MaterializeResult:
    """Backtest: the model vs the historic-spend-rate baseline on (t - H, t], the metrics of METRICS.md."""
    cfg = clv.platform()
    holdout = read_window(datasets_dir() / "holdout")
    model = ClvModel.load(settings.models_dir() / "backtest")
    y = holdout.y
    candidates = {
        "ziln_model": model.predict(holdout.features, holdout.sequences),
        "historic_spend_rate": historic_spend_rate(holdout.features, cfg.horizon_days),
    }
    oracle = oracle_values(cfg, holdout)
    rows = {name: evaluate(y, pred["predicted_value"].to_numpy(), pred["p_return"].to_numpy())
            for name, pred in candidates.items()}
    if oracle is not None:
        rows["oracle_truth"] = evaluate(y, oracle, None)
    board = pd.DataFrame(rows).T.rename_axis("model").reset_index()
    settings.reports_dir().mkdir(parents=True, exist_ok=True)
    board.to_csv(settings.reports_dir() / "leaderboard.csv", index=False)
    gini = {name: float(r["normalized_gini"]) for name, r in rows.items()}
    return dg.MaterializeResult(metadata={
        "holdout_cutoff": str(holdout.cutoff),
        "customers": len(holdout),
        "model_normalized_gini": gini["ziln_model"],
        "baseline_normalized_gini": gini["historic_spend_rate"],
        **({"oracle_normalized_gini": gini["oracle_truth"]} if oracle is not None else {}),
        "model_beats_baseline": gini["ziln_model"] > gini["historic_spend_rate"],
        "leaderboard": dg.MetadataValue.md(board.round(4).to_markdown(index=False)),
    })


@dg.asset(deps=[training_set, model_evaluation], group_name="modeling", kinds={"pytorch"})
def clv_model(context: AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    """The production model: same recipe, trained at t - H on labels up to t, to score customers at t."""
    model = _fit(read_window(datasets_dir() / "holdout"), context, clv.platform())
    model.save(settings.models_dir() / "production")
    return dg.MaterializeResult(metadata=_model_meta(model))


@dg.asset(deps=[clv_model], group_name="scoring", kinds={"duckdb"}, pool="duckdb")
def customer_scores(clv: ClvConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """Every customer at t: expected value over the horizon, return probability, value interval, lifecycle stage."""
    window = read_window(datasets_dir() / "score")
    model = ClvModel.load(settings.models_dir() / "production")
    scores = score_frame(model, window)
    with warehouse.connect() as con:
        con.register("scores_df", scores)
        con.execute("CREATE OR REPLACE TABLE main.customer_scores AS SELECT * FROM scores_df")
    stages = scores["lifecycle_stage"].value_counts().to_dict()
    return dg.MaterializeResult(metadata={
        "customers": len(scores),
        "total_predicted_value": float(scores["predicted_value"].sum()),
        "mean_p_return": float(scores["p_return"].mean()),
        **{f"stage_{k}": int(v) for k, v in stages.items()},
        "preview": dg.MetadataValue.md(scores.nlargest(10, "predicted_value").round(3).to_markdown(index=False)),
    })


def score_frame(model: ClvModel, window: Window) -> pd.DataFrame:
    pred = model.predict(window.features, window.sequences)
    return pd.concat([
        pd.DataFrame({"customer_id": window.customer_ids, "cutoff_date": window.features["cutoff_date"].to_numpy()}),
        pred, pd.DataFrame({"lifecycle_stage": window.lifecycle.to_numpy()}),
    ], axis=1)
