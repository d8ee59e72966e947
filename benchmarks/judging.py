"""What judging a zoo costs, the way the backtest judges it now and the way it did before, side by side.

`backtest_model` judges every member of the zoo on each fold's eval window (ml.pipeline.evaluate_backtest). The
ensemble stacks the raw predictions of its members; inside `ml.models.interface.shared_predictions` it reuses the
ones its members have just made on that window, where before it made them again. This script loads the backtest
models and one eval window of a pipeline run kept by `benchmarks/scale.py --keep DIR` (the ensemble given the
loaded members, as it holds them when the backtest trains them) and judges them both ways, checking that the
leaderboards are the same. Prints one JSON object: rows, seconds per way, the speed-up, seconds per member.

Usage: python benchmarks/judging.py --pipeline DIR/pipeline_1000000 [--window eval_1] [--rows 0]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ml import pipeline  # noqa: E402
from ml.data.windows import read_window  # noqa: E402
from ml.models.interface import shared_predictions  # noqa: E402
from ml.models.zoo import load_model  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, required=True, help="a pipeline folder kept by scale.py --keep")
    parser.add_argument("--window", default="eval_1", help="the datasets' window to judge on (eval_0, eval_1, ...)")
    parser.add_argument("--rows", type=int, default=0, help="judge on the first ROWS customers only (0: all)")
    args = parser.parse_args()
    backtest = next((args.pipeline / "models" / "backtest").iterdir())
    window = read_window(next((args.pipeline / "datasets").iterdir()) / args.window)
    if args.rows:
        window = window.take(np.arange(min(args.rows, len(window))))
    names = json.loads((backtest / "zoo.json").read_text())["fold_ginis"]
    models = {row["model"]: load_model(backtest / row["model"]) for row in names}
    if "ensemble" in models:  # its members are the zoo's own models, as when the backtest trained them
        ensemble = models["ensemble"]
        ensemble.members = {m: models.get(m, member) for m, member in ensemble.members.items()}
    log(f"judging {len(models)} models on {len(window):,} customers of {args.window}")

    seconds, boards = {}, {}
    for way in ("each_model_alone", "shared_predictions"):
        per_model, predictions = {}, {}
        started = time.perf_counter()
        with shared_predictions() if way == "shared_predictions" else nullcontext():
            for name, model in models.items():
                t0 = time.perf_counter()
                predictions[name] = model.predict(window.features, window.sequences, window.events)
                per_model[name] = round(time.perf_counter() - t0, 1)
        boards[way] = pipeline.evaluate_backtest(models, window, predictions=predictions)[0]
        seconds[way] = {"total": round(time.perf_counter() - started, 1), "per_model": per_model}
        log(f"{way}: {seconds[way]['total']} s")
    pd.testing.assert_frame_equal(boards["each_model_alone"], boards["shared_predictions"])
    print(json.dumps({"window": args.window, "rows": len(window), "models": list(models), "seconds": seconds,
                      "speedup": round(seconds["each_model_alone"]["total"] / seconds["shared_predictions"]["total"], 2),
                      "same_leaderboard": True}))


if __name__ == "__main__":
    main()
