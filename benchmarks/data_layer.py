"""The data layer at scale: simulate -> write export files -> ingest -> dbt build, for shops of 10k, 100k and 1M
customers, printed as JSON (one object per size on stdout; progress on stderr).

Per stage: wall seconds, rows and rows per second, and the peak resident memory of the whole process tree (this
process plus dbt's subprocess), sampled every 50 ms. Side by side, in the same run:
- `incremental`: `dbt build` again on the same data, where the incremental models keep every cutoff;
- `baseline`: a floor for the ingest stage, pandas only reading the same CSVs (`pandas.read_csv`, timestamps
  parsed; no validation, no quarantine, no hashing).
The goal: 1M customers (about 20 events each) through all four stages in under 10 minutes on 2 cores, under 8 GiB.

The shop's browsing intensity is scaled so that it makes about --events-per-customer events per customer (the
built-in shop's default makes ~34); the actual figure is reported.

Usage: python benchmarks/data_layer.py [--sizes 10000 100000 1000000] [--format csv|parquet]
                                       [--events-per-customer 20] [--no-baseline] [--keep DIR]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from ml import settings  # noqa: E402
from ml.data.ingest import ingest_folder  # noqa: E402
from ml.data.simulator import ShopParams, simulate_shop  # noqa: E402

START, END, HORIZON = "2024-01-01", "2025-12-31", 90
MARTS = ("int_customer_daily", "customer_features", "customer_labels", "customer_lifecycle", "customer_sequences")


class TreeMemory:
    """Peak RSS of this process and all its descendants, sampled in a thread; with `history`, every sample too
    ((time.time(), bytes) in `samples`), to find the peak of a span afterwards (`peak_between`)."""

    def __init__(self, interval: float = 0.05, history: bool = False):
        self.me, self.interval, self.peak = psutil.Process(), interval, 0
        self.samples: list[tuple[float, int]] | None = [] if history else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        total = 0
        for proc in [self.me, *self.me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:  # ended between listing and reading
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            rss = self.rss()
            self.peak = max(self.peak, rss)
            if self.samples is not None:
                self.samples.append((time.time(), rss))
            time.sleep(self.interval)

    def peak_between(self, start: float, end: float) -> int:
        """The highest sample taken in [start, end] (time.time() seconds; needs `history`)."""
        return max((rss for t, rss in self.samples or [] if start <= t <= end), default=0)

    def reset(self) -> None:
        self.peak = self.rss()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Stage:
    """Times a block and records its rows and the tree's peak memory into `out[name]`."""

    def __init__(self, out: dict, name: str, memory: TreeMemory):
        self.out, self.name, self.memory = out, name, memory

    def __enter__(self):
        gc.collect()
        self.memory.reset()
        print(f"  {self.name} ...", file=sys.stderr, flush=True)
        self.t0 = time.perf_counter()
        self.figures: dict = {}
        return self.figures

    def __exit__(self, *exc):
        seconds = time.perf_counter() - self.t0
        time.sleep(self.memory.interval * 2)
        rows = self.figures.get("rows", 0)
        self.out[self.name] = {"seconds": round(seconds, 2), **self.figures,
                               "rows_per_second": round(rows / seconds) if rows else None,
                               "peak_rss_gib": round(self.memory.peak / 2**30, 2)}
        print(f"  {self.name}: {seconds:.1f} s, peak {self.memory.peak / 2**30:.2f} GiB", file=sys.stderr, flush=True)


def shop_params(events_per_customer: float) -> ShopParams:
    """Browsing intensity that gives about `events_per_customer` events per customer, from two pilot shops
    (events grow linearly with the browsing scale: purchase-driven events + scale x browsing-driven events)."""
    base = ShopParams()

    def scaled(s: float) -> ShopParams:
        return replace(base, views_per_purchase=base.views_per_purchase * s,
                       base_views_per_day=base.base_views_per_day * s)

    pilot = {s: len(simulate_shop(20_000, START, END, seed=99, params=scaled(s)).events) / 20_000 for s in (0.25, 1.0)}
    slope = (pilot[1.0] - pilot[0.25]) / 0.75
    return scaled(max((events_per_customer - pilot[1.0]) / slope + 1.0, 0.0))


def dbt_build(db: Path, work: Path, variables: dict | None = None, target: str | None = None,
              extra_env: dict | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """`dbt build` against `db` (target, logs and, for Spark, derby.log in `work`); on the profile's default target
    (DuckDB) unless `target` names another. Past `timeout` seconds dbt and all it started (Spark's JVM) are killed
    and TimeoutError raised."""
    if variables is None:
        cfg = settings.PlatformConfig(as_of=END, horizon_days=HORIZON)
        variables = {"as_of": cfg.as_of, "horizon_days": cfg.horizon_days, "sequence_weeks": cfg.sequence_weeks,
                     "has_customers": True, "has_events": True,
                     "n_train_windows": getattr(cfg, "n_train_windows", 1)}
    command = [settings.dbt_executable(), "build", "--project-dir", str(settings.DBT_PROJECT_DIR),
               "--profiles-dir", str(settings.DBT_PROJECT_DIR), "--target-path", str(work / "target"),
               "--log-path", str(work / "logs"), "--vars", json.dumps(variables)]
    command += ["--target", target] if target else []
    proc = subprocess.Popen(command, env={**os.environ, "CLV_DUCKDB_PATH": str(db), **(extra_env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=work,
                            start_new_session=True)  # its own process group, to end the JVM with it
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise TimeoutError(f"dbt build did not finish in {timeout:.0f} s") from None
    result = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    if result.returncode != 0:
        raise SystemExit(f"dbt build failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return result


def slowest_nodes(run_results: Path, top: int = 5) -> dict[str, float]:
    """dbt's own seconds for its slowest models and tests."""
    results = json.loads(run_results.read_text())["results"]
    timed = sorted(((r["unique_id"].split(".")[2], r["execution_time"]) for r in results), key=lambda x: -x[1])
    return {name: round(seconds, 2) for name, seconds in timed[:top]}


def run_size(n: int, params: ShopParams, fmt: str, baseline: bool, work: Path, memory: TreeMemory) -> dict:
    folder, db = work / "shop", work / "warehouse.duckdb"
    stages: dict = {}
    with Stage(stages, "simulate", memory) as f:
        shop = simulate_shop(n, START, END, seed=7, params=params, horizon_days=HORIZON)
        counts = {"customers": len(shop.customers), "orders": len(shop.orders), "events": len(shop.events)}
        f.update(rows=sum(counts.values()), **{f"{k}_rows": v for k, v in counts.items()})
    with Stage(stages, "write_files", memory) as f:
        shop.write(folder, fmt=fmt)
        f.update(rows=sum(counts.values()), bytes=sum(p.stat().st_size for p in folder.iterdir()))
    del shop
    with Stage(stages, "ingest", memory) as f:
        with duckdb.connect(str(db)) as con:
            reports = ingest_folder(con, folder)
        f.update(rows=sum(r.rows_read for r in reports), rows_quarantined=sum(r.rows_quarantined for r in reports))
    with Stage(stages, "dbt_build", memory) as f:
        result = dbt_build(db, work)
        with duckdb.connect(str(db), read_only=True) as con:
            marts = {m: con.execute(f"SELECT count(*) FROM main.{m}").fetchone()[0] for m in MARTS}
        f.update(rows=sum(counts.values()), output_rows=marts, tests=result.stdout.count(" PASS "),
                 slowest_nodes=slowest_nodes(work / "target" / "run_results.json"))
    # the same build again on the same data: the incremental models keep every cutoff (what a retry or a run
    # without new data costs); not part of the four stages' total
    again: dict = {}
    with Stage(again, "dbt_build_again", memory) as f:
        dbt_build(db, work)
        f.update(rows=sum(counts.values()), slowest_nodes=slowest_nodes(work / "target" / "run_results.json"))
    out = {
        "customers": n,
        "events_per_customer": round(counts["events"] / n, 1),
        "format": fmt,
        "stages": stages,
        "total_seconds": round(sum(s["seconds"] for s in stages.values()), 1),
        "peak_rss_gib": max(s["peak_rss_gib"] for s in stages.values()),
    }
    out["incremental"] = again
    if baseline and fmt == "csv":
        floor: dict = {}
        with Stage(floor, "pandas_read_csv", memory) as f:
            frames = {t: pd.read_csv(folder / f"{t}.csv", parse_dates=[ts])
                      for t, ts in (("customers", "signup_ts"), ("orders", "order_ts"), ("events", "event_ts"))}
            f.update(rows=sum(len(x) for x in frames.values()))
            del frames
        out["baseline"] = floor
    if n >= 1_000_000:
        out["goal_1m_under_600s_and_8gib"] = out["total_seconds"] < 600 and out["peak_rss_gib"] < 8
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--events-per-customer", type=float, default=20.0)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one, removed)")
    args = parser.parse_args()
    params = shop_params(args.events_per_customer)
    memory = TreeMemory()
    root = args.keep or Path(tempfile.mkdtemp(prefix="clv-bench-"))
    try:
        for n in args.sizes:
            print(f"{n} customers", file=sys.stderr, flush=True)
            work = root / f"n{n}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            print(json.dumps(run_size(n, params, args.format, not args.no_baseline, work, memory)), flush=True)
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        memory.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
