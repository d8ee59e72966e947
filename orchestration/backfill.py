"""`make backfill WEEKS=12`: rescore the past N cutoffs, oldest first, one run per partition in the Dagster instance.

The same as a backfill of the `rescore` job from the UI, without needing the daemon: each run is recorded in
$DAGSTER_HOME, so the UI shows scores, drift share and matured performance per partition afterwards. Ingestion runs
first (new files only); the champion is not retrained; old cutoffs publish nothing to the API.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta

import dagster as dg

from ml import registry, settings


def past_cutoffs(newest: str, count: int, period_days: int) -> list[str]:
    end = date.fromisoformat(newest)
    return [(end - timedelta(days=period_days * k)).isoformat() for k in range(count - 1, -1, -1)]


def main(argv: list[str] | None = None) -> int:
    from orchestration.run import run_job
    from orchestration.partitions import CUTOFFS
    from orchestration.up import ingest_then_newest_cutoff

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--periods", type=int, default=12, help="how many cutoffs back, the newest included")
    args = ap.parse_args(argv)
    instance = dg.DagsterInstance.get()
    if not registry.champion_version():
        print("backfill: no champion yet: run `make materialize` (or `make up`) first", file=sys.stderr)
        return 1
    newest = ingest_then_newest_cutoff(instance, "backfill", "backfill")
    if newest is None:
        return 1
    valid = set(CUTOFFS.get_partition_keys())
    keys = [k for k in past_cutoffs(newest, args.periods, settings.load_config().cutoffs.period_days) if k in valid]
    started = time.perf_counter()
    for i, key in enumerate(keys, 1):
        print(f"backfill: [{i}/{len(keys)}] rescoring cutoff {key}", file=sys.stderr, flush=True)
        result = run_job("rescore", instance, partition_key=key, tags={"clv/trigger": "backfill"})
        if not result.success:
            print(f"backfill: cutoff {key} failed; see its run in the Dagster UI", file=sys.stderr)
            return 1
    print(f"backfill: {len(keys)} cutoffs ({keys[0]} .. {keys[-1]}) in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C: the run is marked failed in the instance; the next one starts clean
        print("backfill: interrupted", file=sys.stderr)
        sys.exit(130)
