"""The backtest: every zoo model, trained on fold 0's train cutoff, scored on the window after its eval cutoff on the
same rows; one leaderboard (with every fold's Gini), the pictures, global feature importance, and the challenger
(the best servable model on the mean normalized Gini over the folds)."""

import json

import dagster as dg

from ml import pipeline, settings
from ml.evaluation import plots
from ml.evaluation.explain import permutation_importance
from ml.evaluation.leaderboard import ORACLE, SHOWN, to_markdown, to_records
from ml.evaluation.oracle import oracle_predictions
from ml.models.zoo import DESCRIPTIONS, MODEL_NAMES, load_model, servable_names
from orchestration.assets.ingestion import export_folder
from orchestration.partitions import CUTOFFS, ONE_CUTOFF_PER_RUN
from orchestration.resources import ClvConfig

IMPORTANCE_ROWS = 5_000  # permutation importance on a sample of the holdout: enough to rank the groups


def backtest_dir(cutoff: str):
    """The zoo of the cutoff's backtest, one folder per model name."""
    return settings.models_dir() / "backtest" / cutoff


def reports_dir(cutoff: str):
    """The reports of one cutoff: leaderboard, pictures, drift and performance HTML."""
    return settings.reports_dir() / cutoff


def summary_path(cutoff: str):
    return reports_dir(cutoff) / "backtest.json"


def read_backtest_summary(cutoff: str) -> dict:
    return json.loads(summary_path(cutoff).read_text())


@dg.asset(deps=[dg.AssetKey("backtest_model")], group_name="modeling", kinds={"python"}, partitions_def=CUTOFFS,
          backfill_policy=ONE_CUTOFF_PER_RUN)
def model_evaluation(context: dg.AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    """Leaderboard of the zoo on the holdout (METRICS.md), beside the simulator's truth where it exists; gain
    curves, decile chart, return calibration and feature importance as pictures; the challenger for clv_model."""
    cutoff = context.partition_key
    cfg = clv.platform(cutoff)
    windows = pipeline.read_windows(settings.datasets_dir() / cutoff)
    holdout = windows.holdout
    beyond = pipeline.beyond_training(windows)
    folder = backtest_dir(cutoff)
    models = {n: load_model(folder / n) for n in MODEL_NAMES if (folder / n).exists()}
    zoo = json.loads((folder / "zoo.json").read_text())
    oracle = oracle_predictions(export_folder(cfg) / "truth.parquet", holdout)
    facts = {n: {"train_seconds": zoo["seconds"].get(n)} for n in models}
    # the backtest's own predictions on the holdout (made again only when they are not those of these models)
    kept = pipeline.read_holdout_predictions(folder, list(models), holdout)
    board, predictions = pipeline.evaluate_backtest(models, holdout, oracle, facts, predictions=kept)
    board = pipeline.with_fold_ginis(board, zoo["fold_ginis"])
    order = pipeline.choose_order(board, servable_names(models), cfg.training.promotion_margin, beyond)
    challenger = order[0]
    row = {k: v for k, v in to_records(board[board["model"] == challenger])[0].items()}

    reports = reports_dir(cutoff)
    reports.mkdir(parents=True, exist_ok=True)
    board.to_csv(reports / "leaderboard.csv", index=False)
    summary_path(cutoff).write_text(json.dumps({"challenger": challenger, "order": order, "holdout_cutoff": str(holdout.cutoff),
                                          "metrics": row, "leaderboard": to_records(board)}, indent=1))

    y = holdout.y
    value = {n: predictions[n]["predicted_value"].to_numpy() for n in (challenger, "btyd", "historic_spend_rate")
             if n in predictions}
    returns = {n: predictions[n]["p_return"].to_numpy() for n in value}
    if oracle is not None:
        value[ORACLE] = oracle["predicted_value"].to_numpy()
        returns[ORACLE] = oracle["p_return"].to_numpy()
    sample = min(len(holdout), IMPORTANCE_ROWS)
    importance = permutation_importance(models[challenger], holdout.features.iloc[:sample],
                                        holdout.sequences[:sample], y[:sample], seed=cfg.training.seed,
                                        events=holdout.events[:sample])
    pictures = {
        "gain_curves": plots.gain_chart(y, value),
        "deciles": plots.decile_chart(y, value[challenger], challenger),
        "return_calibration": plots.calibration_chart(y > 0, returns),
        "feature_importance": plots.importance_chart(importance, f"Permutation importance: {challenger}"),
    }
    for name, png in pictures.items():
        (reports / f"{name}.png").write_bytes(png)

    gini = dict(zip(board["model"], board["normalized_gini"]))
    shown = board.assign(what=[DESCRIPTIONS.get(m, "the simulator's true expected value") for m in board["model"]])
    return dg.MaterializeResult(metadata={
        "holdout_cutoff": str(holdout.cutoff),
        "customers": len(holdout),
        "challenger": challenger,
        "scored_beyond_training_ages": beyond,
        "trees_last_in_choice": beyond > pipeline.EXTRAPOLATION_SHARE,
        "model_normalized_gini": float(gini[challenger]),
        "baseline_normalized_gini": float(gini.get("historic_spend_rate", float("nan"))),
        "btyd_normalized_gini": float(gini.get("btyd", float("nan"))),
        **({"oracle_normalized_gini": float(gini[ORACLE])} if ORACLE in gini else {}),
        "model_beats_baseline": bool(gini[challenger] > gini.get("historic_spend_rate", -1)),
        "model_beats_btyd": bool(gini[challenger] > gini.get("btyd", -1)),
        "challenger_total_error": float(board.loc[board["model"] == challenger, "total_error"].iloc[0]),
        "challenger_mean_normalized_gini": float(board.loc[board["model"] == challenger, "mean_normalized_gini"].iloc[0]),
        "leaderboard": dg.MetadataValue.md(to_markdown(shown, ["what", "mean_normalized_gini", "calibration",
                                                               "train_seconds", *SHOWN])),
        "leaderboard_table": _table(board),
        "failures": dg.MetadataValue.md("\n".join(f"- {k}: {v}" for k, v in zoo["failures"].items()) or "none"),
        **{name: dg.MetadataValue.md(plots.markdown_image(png, name.replace("_", " ")))
           for name, png in pictures.items()},
        "report_folder": dg.MetadataValue.path(str(reports)),
    })


def _table(board) -> dg.MetadataValue:
    """The leaderboard as a Dagster table (numbers rounded; an infinite decile MAPE as text)."""
    cols = ["model", *[c for c in SHOWN if c in board]]
    records = [dg.TableRecord({c: str(r[c]) if c == "decile_mape" and r[c] is not None else r[c] for c in cols})
               for r in to_records(board[cols])]
    schema = dg.TableSchema(columns=[dg.TableColumn(c, "string" if c in ("model", "decile_mape") else "float")
                                     for c in cols])
    return dg.MetadataValue.table(records=records, schema=schema)
