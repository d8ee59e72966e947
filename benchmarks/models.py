"""The model zoo on the built-in shop, where the truth is known: one out-of-time leaderboard, the targets, timings.

    python benchmarks/models.py [--customers 20000] [--seed 7] [--search-budget 120] [--deep-rows 1000000]

Part 1, on a shop of --customers: simulate -> ingest -> dbt build -> windows (the platform's own pieces, ml/data/build.py)
-> the zoo trained at t - 2H, calibrated on the year before t - H -> every model scored on (t - H, t] beside
  - the oracle: the simulator's true expected value and return probability per customer (the ceiling);
  - truth_fit: gradient boosting fitted on the oracle's values at t - 2H instead of the noisy realised ones, i.e.
    the best that the observable features can rank. The gap oracle -> truth_fit is what no model of the history
    can close; the gap truth_fit -> the zoo is what better modelling could still win.
Part 2 (--deep-rows > 0): the deep ZILN model trained on that many labelled rows of a bigger simulated shop, with
  the platform's configuration for big windows, on the CPU threads this machine gives it (time and epochs).

Prints one JSON object on stdout (progress on stderr). Targets (the issue's): champion normalized Gini >= 0.97 x
oracle's; decile MAPE <= 0.10; return AUC >= 0.98 x oracle's; champion beats BTYD on Gini and Spearman with
|total error| <= 5 %; deep model on 1M rows, 2 cores, < 15 minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from ml.data import build  # noqa: E402
from ml import pipeline  # noqa: E402
from ml.evaluation.leaderboard import ORACLE, leaderboard, to_records  # noqa: E402
from ml.data.plan import plan_windows  # noqa: E402
from ml.evaluation.oracle import oracle_predictions  # noqa: E402
from ml.settings import TrainingConfig  # noqa: E402
from ml.data.simulator import simulate_shop  # noqa: E402
from ml.data.windows import Window  # noqa: E402
from ml.models.zoo import servable_names  # noqa: E402

AS_OF, START, HORIZON, WEEKS = date(2025, 12, 31), "2024-01-01", 90, 26


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build_shop(n: int, seed: int, work: Path, timings: dict, truth: bool = True,
               reuse: bool = False) -> tuple[pipeline.Windows, Path]:
    """A simulated shop through the platform's data layer; truth at every cutoff the windows use (if `truth`).
    `reuse`: a warehouse built by an earlier run in `work` (--keep) is read as it is."""
    db = work / "warehouse.duckdb"
    if reuse and db.exists():
        log(f"reusing {db}")
        with duckdb.connect(str(db), read_only=True) as con:
            return pipeline.load_windows(con, WEEKS), work / "shop" / "truth.parquet"
    t0 = time.perf_counter()
    plan = plan_windows(AS_OF, HORIZON, date.fromisoformat(START))
    cutoffs = sorted({w.cutoff for w in plan.windows}) if truth else []
    shop = simulate_shop(n_customers=n, start=START, end=AS_OF, seed=seed, truth_cutoffs=cutoffs[::-1],
                         horizon_days=HORIZON)
    shop.write(work / "shop")
    timings["simulate_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    _, has_customers, has_events = build.ingest_exports(db, work / "shop")
    timings["ingest_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    build.dbt_build(db, build.dbt_vars(AS_OF.isoformat(), HORIZON, WEEKS, has_customers, has_events, plan), work)
    timings["dbt_build_s"] = round(time.perf_counter() - t0, 1)
    with duckdb.connect(str(db), read_only=True) as con:
        windows = pipeline.load_windows(con, WEEKS, plan.describe())
    return windows, work / "shop" / "truth.parquet"


def truth_fit(windows: pipeline.Windows, truth: Path, seed: int) -> pd.DataFrame:
    """Gradient boosting on the oracle's value at t - 2H: how well the observable features can rank at best."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from ml.models.preprocess import Preprocessor
    from ml.models.zoo.hurdle import design_matrix

    train, holdout = windows.train, windows.holdout
    target = oracle_predictions(truth, train)
    prep = Preprocessor.fit(train.features, train.sequences)
    x, xh = design_matrix(prep, train.features, train.sequences), design_matrix(prep, holdout.features, holdout.sequences)
    seq, seqh = (w.sequences.reshape(len(w), -1) for w in (train, holdout))
    value = HistGradientBoostingRegressor(loss="poisson", max_iter=600, learning_rate=0.05, random_state=seed)
    value.fit(np.hstack([x, seq]), target["predicted_value"].to_numpy())
    ret = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed)
    ret.fit(np.hstack([x, seq]), train.y > 0)
    return pd.DataFrame({"predicted_value": value.predict(np.hstack([xh, seqh])),
                         "p_return": ret.predict_proba(np.hstack([xh, seqh]))[:, 1]})


def zoo_part(args, work: Path) -> dict:
    timings: dict = {}
    log(f"building a shop of {args.customers:,} customers")
    windows, truth = build_shop(args.customers, args.seed, work, timings, reuse=args.reuse)
    training = TrainingConfig(search_budget_seconds=args.search_budget, seed=args.seed)
    log("training the zoo at t - 2H")
    t0 = time.perf_counter()
    backtest = pipeline.fit_backtest(windows, training, progress=log)
    result = backtest.folds[0]
    timings["zoo_fit_s"] = round(time.perf_counter() - t0, 1)
    oracle = oracle_predictions(truth, windows.holdout)
    facts = {n: {"train_seconds": s} for n, s in result.seconds.items()}
    board, _ = pipeline.evaluate_backtest(result.models, windows.holdout, oracle, facts)
    board = pipeline.with_fold_ginis(board, pipeline.fold_ginis(backtest, windows))
    champion = pipeline.choose_order(board, servable_names(result.models), training.promotion_margin)[0]
    log("truth_fit: the features' ceiling")
    reference = leaderboard(windows.holdout.y, {"truth_fit": truth_fit(windows, truth, args.seed)})
    board = pd.concat([board, reference], ignore_index=True)
    row = board.set_index("model")
    c, o, b = row.loc[champion], row.loc[ORACLE], row.loc["btyd"]
    targets = {
        "champion": champion,
        "gini_vs_oracle": round(c["normalized_gini"] / o["normalized_gini"], 4),
        "gini_ge_0.97_oracle": bool(c["normalized_gini"] >= 0.97 * o["normalized_gini"]),
        "truth_fit_gini_vs_oracle": round(row.loc["truth_fit", "normalized_gini"] / o["normalized_gini"], 4),
        "decile_mape": float(c["decile_mape"]),
        "decile_mape_le_0.10": bool(c["decile_mape"] <= 0.10),
        "return_auc_vs_oracle": round(c["return_auc"] / o["return_auc"], 4),
        "return_auc_ge_0.98_oracle": bool(c["return_auc"] >= 0.98 * o["return_auc"]),
        "beats_btyd_gini": bool(c["normalized_gini"] > b["normalized_gini"]),
        "beats_btyd_spearman": bool(c["spearman"] > b["spearman"]),
        "total_error": round(float(c["total_error"]), 4),
        "total_error_within_5pct": bool(abs(c["total_error"]) <= 0.05),
    }
    calibration = {n: round(float(m.info.get("calibration", 1.0)), 4) for n, m in result.models.items()}
    return {
        "shop": {"customers": args.customers, "seed": args.seed, "as_of": AS_OF.isoformat(), "horizon_days": HORIZON,
                 **{f"{role}_cutoff": str(w.cutoff) if w is not None else None for role, w in windows.roles().items()},
                 "train_rows": len(windows.train), "holdout_rows": len(windows.holdout)},
        "leaderboard": to_records(board),
        "calibration_factors": calibration,
        "targets": targets,
        "search_trials": result.search_trials,
        "failures": result.failures,
        "timings": {**timings, "train_seconds": result.seconds},
    }


def deep_part(args, work: Path) -> dict:
    """The deep model on --deep-rows labelled rows: a shop big enough that the t - H window (the production
    model's training set) plus the t - 2H window hold them; exactly --deep-rows rows are used."""
    from dataclasses import replace

    from ml.models.search import base_config
    from ml.models.zoo.deep_ziln import DeepZiln

    timings: dict = {}
    n = int(args.deep_rows / 1.2)  # about 0.76 + 0.56 of a shop's customers are in the t - H and t - 2H windows
    log(f"building a shop of {n:,} customers for {args.deep_rows:,} training rows")
    windows, _ = build_shop(n, args.seed, work, timings, truth=False, reuse=args.reuse)
    parts = [windows.holdout, windows.train]
    rows = pd.concat([w.features for w in parts], ignore_index=True)
    labels = pd.concat([w.labels for w in parts], ignore_index=True)
    sequences = np.concatenate([w.sequences for w in parts])
    take = np.sort(np.random.default_rng(args.seed).permutation(len(rows))[: args.deep_rows])
    window = Window(windows.holdout.cutoff, rows.iloc[take].reset_index(drop=True), sequences[take],
                    pd.Series(["?"] * len(take)), labels.iloc[take].reset_index(drop=True))
    cfg = base_config(len(window), seed=args.seed)  # the platform's configuration for a window this big
    if args.deep_budget is not None:
        cfg = replace(cfg, max_seconds=args.deep_budget)
    log(f"training the deep ZILN model on {len(window):,} rows, {cfg}")
    t0 = time.perf_counter()
    model = DeepZiln.train(window, cfg, progress=lambda e, tr, va: log(f"epoch {e}: train {tr:.4f} val {va:.4f} "
                                                                    f"({time.perf_counter() - t0:.0f} s)"))
    seconds = time.perf_counter() - t0
    return {"rows": len(window), "shop_customers": n, "seconds": round(seconds, 1),
            "under_15_minutes": seconds < 900, "epochs": model.info["epochs"], "stopped_by": model.info["stopped_by"],
            "best_val_loss": round(model.info["best_val_loss"], 4), "cpu_threads": model.info.get("cpu_threads"),
            "device": model.info["device"], "config": model.info["config"], "data_layer": timings,
            "load_average_at_end": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--search-budget", type=float, default=120.0)
    parser.add_argument("--deep-rows", type=int, default=1_000_000, help="0 skips part 2")
    parser.add_argument("--deep-budget", type=float, default=None,
                        help="override the training cap of the platform's big-window configuration (seconds)")
    parser.add_argument("--skip-zoo", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the work folders here")
    parser.add_argument("--reuse", action="store_true", help="reuse warehouses an earlier run kept in --keep")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="clv-bench-models-"))
    out = {"machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "cuda": torch.cuda.is_available(), "load_average_at_start": os.getloadavg()[0]}}
    try:
        if not args.skip_zoo:
            out["zoo"] = zoo_part(args, work / "zoo")
        if args.deep_rows > 0:
            out["deep_1m"] = deep_part(args, work / "deep")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
