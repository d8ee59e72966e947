"""Training throughput of the deep network on 1 vs N processes (DistributedDataParallel, ml/models/distributed.py).

    python benchmarks/ddp_throughput.py [--customers 132000] [--epochs 3] [--processes 1 2] [--keep DIR --reuse]

A simulated shop through the platform's data layer (simulate -> ingest -> dbt build of the score and t - H windows
only); its t - H window (~0.76 of the customers: ~100k rows at the default) is trained with the platform's
configuration for a window that size, for a fixed number of epochs (no early stopping), once per process count.
Prints one JSON object on stdout: per process count, seconds per epoch (train + validation, from rank 0's
progress as the parent receives it), training rows per second, and the launch overhead (torchrun, the ranks'
imports, the window written and read), plus the machine's load. Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ml.data import build  # noqa: E402
from ml.data.plan import plan_windows  # noqa: E402
from ml.data.simulator import simulate_shop  # noqa: E402
from ml.data.windows import load_window  # noqa: E402
from ml.models.search import base_config  # noqa: E402
from ml.models.training import train_network  # noqa: E402

AS_OF, START, HORIZON, WEEKS = date(2025, 12, 31), "2024-01-01", 90, 26


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def shop_window(customers: int, seed: int, work: Path, reuse: bool):
    """The t - H window of a simulated shop (a warehouse kept in `work` by an earlier run, with --reuse)."""
    db = work / "warehouse.duckdb"
    plan = plan_windows(AS_OF, HORIZON, date.fromisoformat(START))
    production = plan.cutoff("production").cutoff
    if not (reuse and db.exists()):
        t0 = time.perf_counter()
        shop = simulate_shop(n_customers=customers, start=START, end=AS_OF, seed=seed)
        shop.write(work / "shop")
        _, has_customers, has_events = build.ingest_exports(db, work / "shop")
        plan.windows = [w for w in plan.windows if w.role in ("score", "production")]  # dbt builds only these
        build.dbt_build(db, build.dbt_vars(AS_OF.isoformat(), HORIZON, WEEKS, has_customers, has_events, plan), work)
        log(f"shop of {customers:,} customers built in {time.perf_counter() - t0:.0f} s")
    with duckdb.connect(str(db), read_only=True) as con:
        return load_window(con, production, WEEKS, HORIZON)


def run(window, processes: int, epochs: int, threads: int | None, seed: int) -> dict:
    cfg = replace(base_config(len(window), seed=seed), processes=processes, max_epochs=epochs, patience=epochs + 1,
                  max_seconds=None, cpu_threads=threads)
    marks = []
    started = time.perf_counter()
    trained = train_network(window, cfg, progress=lambda e, tr, va: marks.append(time.perf_counter()))
    wall = time.perf_counter() - started
    # the first epoch is timed from the loop's start (train_seconds counts the loop only)
    loop = float(trained.info["train_seconds"])
    per_epoch = np.diff([marks[-1] - loop] + marks)
    n_train = int(trained.info["n_train"])
    return {"processes": processes, "cpu_threads_per_process": trained.info.get("cpu_threads"),
            "batch_size": cfg.batch_size, "epochs": len(marks), "train_rows": n_train,
            "seconds_per_epoch": [round(float(s), 2) for s in per_epoch],
            "mean_seconds_per_epoch": round(float(per_epoch.mean()), 2),
            "rows_per_second": round(n_train / float(per_epoch.mean())),
            "best_val_loss": round(float(trained.info["best_val_loss"]), 5),
            "wall_seconds": round(wall, 1), "overhead_seconds": round(wall - loop, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=132_000, help="~0.76 of them are in the t - H window")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per process (default: the platform's choice for each)")
    parser.add_argument("--keep", type=Path, help="keep the shop's warehouse here (reuse it with --reuse)")
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="clv-bench-ddp-"))
    work.mkdir(parents=True, exist_ok=True)
    out = {"machine": {"cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available(),
                       "load_average_at_start": round(os.getloadavg()[0], 2)}}
    window = shop_window(args.customers, args.seed, work, args.reuse)
    out["window"] = {"cutoff": str(window.cutoff), "rows": len(window)}
    out["runs"] = []
    for n in args.processes:
        log(f"training {args.epochs} epochs on {n} process(es), {len(window):,} rows")
        out["runs"].append(run(window, n, args.epochs, args.threads, args.seed))
        log(json.dumps(out["runs"][-1]))
    base = out["runs"][0]["rows_per_second"]
    for r in out["runs"]:
        r["speedup_vs_first"] = round(r["rows_per_second"] / base, 2)
    out["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
