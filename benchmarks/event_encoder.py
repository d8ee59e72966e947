"""deep_transformer (a transformer over each customer's recent events) against deep_ziln (CNN/GRU over weekly
activity) on the built-in shop, out of time: the same rows, the same split, the same starting recipe (no search
for either, so neither gets more tuning than the other), beside the historic-spend and BTYD baselines and the
oracle. Prints the leaderboard as JSON (normalized Gini per fold and their mean, decile MAPE, return AUC).

    python benchmarks/event_encoder.py --customers 4000 --seed 11 [--folds 1] [--fast] [--work /tmp/shop]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.models import build_shop, log  # noqa: E402
from ml import pipeline  # noqa: E402
from ml.evaluation.leaderboard import leaderboard  # noqa: E402
from ml.evaluation.oracle import oracle_predictions  # noqa: E402
from ml.settings import TrainingConfig  # noqa: E402

MODELS = ["historic_spend_rate", "btyd", "deep_ziln", "deep_transformer"]
COLUMNS = ["model", "normalized_gini", "mean_normalized_gini", "decile_mape", "return_auc", "spearman"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--folds", type=int, default=None, help="backtest folds to train (default: the plan's)")
    parser.add_argument("--fast", action="store_true", help="the test suite's short training")
    parser.add_argument("--work", type=Path, help="keep the shop and warehouse here (reused when it exists)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="clv-events-"))
    work.mkdir(parents=True, exist_ok=True)
    timings: dict = {}
    windows, truth = build_shop(args.customers, args.seed, work, timings, reuse=args.work is not None)
    windows = replace(windows, folds=windows.folds[: args.folds or len(windows.folds)])
    log(f"{len(windows.folds)} fold(s); train {len(windows.train):,} customers, events per customer at most "
        f"{windows.train.events.shape[1]}")
    started = time.perf_counter()
    training = TrainingConfig(fast=args.fast, search_budget_seconds=0, models=MODELS)
    backtest = pipeline.fit_backtest(windows, training, progress=log)
    timings["backtest_s"] = round(time.perf_counter() - started, 1)
    board, predictions = pipeline.evaluate_backtest(backtest.models, windows.holdout)
    oracle = oracle_predictions(truth, windows.holdout)
    if oracle is not None:
        board = leaderboard(windows.holdout.y, {**predictions, "oracle": oracle})
    board = pipeline.with_fold_ginis(board, pipeline.fold_ginis(backtest, windows))
    seconds = {n: backtest.folds[0].seconds.get(n) for n in MODELS}
    result = {"customers": args.customers, "seed": args.seed, "folds": len(windows.folds), "fast": args.fast,
              "timings": timings, "train_seconds_fold_0": seconds,
              "leaderboard": board[[c for c in COLUMNS if c in board]].round(4).to_dict(orient="records")}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
