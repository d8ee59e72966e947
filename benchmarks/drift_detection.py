"""Does the drift check alarm when it should, and only then?

20 clean months and 20 drifted ones (engagement drop or price rise, lasting 1 to 13 weeks before the cutoff) of
seeded simulated shops go through the real data layer (ingest -> dbt) and the platform's drift check (Evidently,
clock columns left out, share vs `drift_threshold`). For each drifted month the cost of the shift is measured
against the simulator's truth: the normalized Gini (vs the true expected value) of a model trained before the
shift, on the drifted month vs on its clean twin (same seed).

Each month's cutoff is a partition key of the platform's calendar (clv.yaml `cutoffs`): the newest cutoff on or
before the month's end. Prints JSON: false alarms and costly shifts caught at the threshold, the threshold sweep
(every threshold between two measured shares), the threshold that separates the costly months from the clean ones
(if one does), detection per kind and size, and each month's figures.
    python benchmarks/drift_detection.py [--customers 3000] [--threshold 0.15]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ml import settings  # noqa: E402
from ml.monitoring.drift import drift_columns, feature_drift  # noqa: E402
from ml.data.ingest import ingest_folder  # noqa: E402
from ml.evaluation.metrics import normalized_gini  # noqa: E402
from ml.data.plan import cutoff_on_or_before  # noqa: E402
from ml.data.simulator import simulate_shop  # noqa: E402
from ml.models.training import TrainConfig  # noqa: E402
from ml.models.zoo.deep_ziln import DeepZiln  # noqa: E402
from ml.data.windows import load_window, planned_cutoffs  # noqa: E402

WEEKS = 16
SIZES_WEEKS = [1, 2, 4, 8, 13]
KINDS = ["engagement", "price"]


def build(folder: Path, seed: int, as_of: date, n: int, kind: str | None, weeks: int | None):
    """Simulate, ingest and run dbt; return (holdout window, score window, truth at the cutoff)."""
    drift_from = as_of - timedelta(weeks=weeks) if kind else None
    shop = simulate_shop(n_customers=n, start=as_of - timedelta(days=730), end=as_of, seed=seed,
                         truth_cutoffs=[as_of], drift_kind=kind, drift_from=drift_from)
    shop.write(folder / "shop")
    db = folder / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        ingest_folder(con, folder / "shop")
    env = {**os.environ, "CLV_DUCKDB_PATH": str(db)}
    subprocess.run([settings.dbt_executable(), "run", "--quiet", "--project-dir", str(settings.DBT_PROJECT_DIR),
                    "--profiles-dir", str(settings.DBT_PROJECT_DIR), "--target-path", str(folder / "target"),
                    "--vars", json.dumps({"as_of": str(as_of), "sequence_weeks": WEEKS})],
                   env=env, check=True, capture_output=True)
    with duckdb.connect(str(db), read_only=True) as con:
        roles = {role: (cutoff, h) for role, cutoff, h in planned_cutoffs(con)}  # dbt's plan-less layout
        holdout = load_window(con, roles["holdout"][0], WEEKS, roles["holdout"][1])
        score = load_window(con, roles["score"][0], WEEKS)
    truth = shop.truth.set_index("customer_id")["expected_value"].reindex(score.customer_ids).fillna(0).to_numpy()
    return holdout, score, truth


def drift_share(model, holdout, score) -> tuple[float, list[str]]:
    numerical, categorical = drift_columns(model)
    result = feature_drift(holdout.features, score.features, numerical, categorical)
    return result.share, result.drifted_columns


def threshold_sweep(clean: np.ndarray, costly: np.ndarray) -> list[dict]:
    """False alarms and missed costly shifts at each threshold halfway between two neighbouring measured shares."""
    shares = np.unique(np.concatenate([clean, costly]))
    candidates = (shares[:-1] + shares[1:]) / 2 if len(shares) > 1 else shares
    return [{"threshold": round(float(t), 4), "false_alarms": int((clean >= t).sum()),
             "costly_missed": int((costly < t).sum())} for t in candidates]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--threshold", type=float, default=settings.load_config().drift_threshold)
    ap.add_argument("--months", type=int, default=20, help="clean months, and as many drifted ones")
    ap.add_argument("--gini-cost", type=float, default=0.05, help="relative Gini loss that must be detected")
    args = ap.parse_args()
    started = time.perf_counter()
    cut = settings.load_config().cutoffs
    month_ends = [date(2025, m, 1) - timedelta(days=1) for m in range(2, 12)]
    months = ([cutoff_on_or_before(d, cut.first_date, cut.period_days) or d for d in month_ends] * 2)[: args.months]
    fast = TrainConfig(max_epochs=12, patience=3)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, as_of in enumerate(months):
            holdout, score, truth = build(Path(tmp) / f"clean{i}", i, as_of, args.customers, None, None)
            model = DeepZiln.train(holdout, fast)  # the serving model: trained at t - H
            share, cols = drift_share(model, holdout, score)
            clean_gini = normalized_gini(truth, model.predict(score.features, score.sequences)["predicted_value"].to_numpy())
            rows.append({"month": str(as_of), "seed": i, "kind": "none", "weeks": 0, "drift_share": share,
                         "alarm": share >= args.threshold, "drifted_columns": cols, "gini_vs_truth": clean_gini})
            kind, weeks = KINDS[i % 2], SIZES_WEEKS[(i // 2) % len(SIZES_WEEKS)]
            _, dscore, dtruth = build(Path(tmp) / f"drift{i}", i, as_of, args.customers, kind, weeks)
            dshare, dcols = drift_share(model, holdout, dscore)
            dgini = normalized_gini(dtruth, model.predict(dscore.features, dscore.sequences)["predicted_value"].to_numpy())
            rows.append({"month": str(as_of), "seed": i, "kind": kind, "weeks": weeks, "drift_share": dshare,
                         "alarm": dshare >= args.threshold, "drifted_columns": dcols, "gini_vs_truth": dgini,
                         "gini_cost": 1 - dgini / clean_gini})
            print(f"month {i + 1}/{len(months)} {as_of}: clean {share:.3f}, {kind} {weeks}w {dshare:.3f} "
                  f"(gini cost {1 - dgini / clean_gini:+.3f})", file=sys.stderr, flush=True)
    frame = pd.DataFrame(rows)
    clean, drifted = frame[frame.kind == "none"], frame[frame.kind != "none"]
    costly = drifted[drifted.gini_cost > args.gini_cost]
    sweep = threshold_sweep(clean.drift_share.to_numpy(), costly.drift_share.to_numpy())
    separating = [r for r in sweep if r["false_alarms"] == 0 and r["costly_missed"] == 0]
    by_size = (drifted.groupby(["kind", "weeks"])
               .agg(months=("alarm", "size"), detected=("alarm", "sum"), mean_share=("drift_share", "mean"),
                    mean_gini_cost=("gini_cost", "mean")).reset_index())
    print(json.dumps({
        "threshold": args.threshold, "customers_per_shop": args.customers,
        "clean_months": len(clean), "false_alarms": int(clean.alarm.sum()),
        "false_alarm_rate": float(clean.alarm.mean()), "max_clean_share": float(clean.drift_share.max()),
        "drifted_months": len(drifted), "detection_rate": float(drifted.alarm.mean()),
        "costly_months": len(costly), "costly_detected": int(costly.alarm.sum()),
        "min_costly_share": float(costly.drift_share.min()) if len(costly) else None,
        "separating_threshold": separating[len(separating) // 2]["threshold"] if separating else None,
        "threshold_sweep": sweep,
        "by_kind_and_size": by_size.round(4).to_dict(orient="records"),
        "months": frame.round(4).to_dict(orient="records"),
        "seconds": round(time.perf_counter() - started, 1),
    }, indent=1, default=str))


if __name__ == "__main__":
    main()
