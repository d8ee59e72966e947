"""The zoo's backtest leaderboard on the test shop at full precision, to compare two versions of the code: a change
that should not change behaviour (a refactor) leaves it identical, to the last digit. Prints JSON.

The shop is tests/clv_test.yaml's (4,000 customers, seed 11, training fast, no search). `clv predict` ingests it
and builds the warehouse; the backtest then runs in process on that warehouse. DuckDB's multi-threaded float sums
vary in the last bits from one dbt build to the next (about 1e-15, which can swap tied ranks), so to compare model
code alone, build once and pass the same warehouse to both versions with --warehouse:

    python benchmarks/leaderboard_snapshot.py --out /tmp/before             # on the old commit
    python benchmarks/leaderboard_snapshot.py --out /tmp/after --warehouse /tmp/before/work
    cmp /tmp/before/leaderboard.csv /tmp/after/leaderboard.csv
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402

from ml import pipeline  # noqa: E402
from ml.cli import main as clv  # noqa: E402
from ml.data.simulator import simulate_shop  # noqa: E402
from ml.settings import TrainingConfig  # noqa: E402

AS_OF, HORIZON, WEEKS = "2025-12-31", 90, 16


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for leaderboard.csv, scores.csv, the shop")
    parser.add_argument("--warehouse", type=Path, help="a `clv predict` workdir already built (its warehouse.duckdb)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    work = args.warehouse
    if work is None:
        shop = args.out / "shop"
        if not (shop / "orders.csv").exists():
            simulate_shop(4000, "2024-01-01", "2025-12-31", seed=11).write(shop, fmt="csv")
        work = args.out / "work"
        code = clv(["predict", "--orders", str(shop / "orders.csv"), "--customers", str(shop / "customers.csv"),
                    "--events", str(shop / "events.csv"), "--as-of", AS_OF, "--horizon-days", str(HORIZON),
                    "--sequence-weeks", str(WEEKS), "--fast", "--search-budget", "0", "--workdir", str(work),
                    "--out", str(args.out / "scores.csv")])
        if code != 0:
            raise SystemExit(f"clv predict exited {code}")
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        windows = pipeline.load_windows(con, WEEKS)
    backtest = pipeline.fit_backtest(windows, TrainingConfig(fast=True, search_budget_seconds=0))
    board, _, ginis = pipeline.judge_backtest(backtest, windows)
    board = pipeline.with_fold_ginis(board, ginis)
    board.to_csv(args.out / "leaderboard.csv", index=False, float_format="%.17g")
    result = {"warehouse": str(work / "warehouse.duckdb"), "seconds": round(time.perf_counter() - started, 1),
              "leaderboard": json.loads(board.to_json(orient="records", double_precision=15))}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
