"""Where scoring time goes at scale: per zoo member, one scoring snapshot tiled to --rows customers, timed in the
steps the `customer_scores` and `served_model` assets take (printed as one JSON object per member and size).

The members come from a small shop's real pipeline run (tests/scenario.py, --customers of the built-in simulator,
training.fast), then each backtest model scores the tiled snapshot:
- predict: `ClvModel.predict` once (what /predict_features and the scores' numbers cost)
- explain_predictions: the one prediction per feature group `ml.evaluation.explain.explain` makes (a deep
  member's sequence encoding made once: ml.models.zoo.deep.reused_encodings)
- explain_predictions_anew: the same, each group's run encoding the sequences anew (as before the reuse)
- explain_words: turning the effects into reasons (`reasons_from_effects`)
- score_frame: `ml.pipeline.score_frame` (the customer_scores asset's work, all of the above)
- publish_reused: what served_model does with that frame before the bento is written (the checks that it is this
  model's on this snapshot, and the answers table)
- publish_anew: `serving.scores.score`, the whole scoring again (what served_model did before it reused the frame,
  and still does when the frame is not the model's)
- answers_build: `serving.scores.Answers.build` (the API's start-up over the answers)
Usage: python benchmarks/scoring.py [--rows 100000 1000000] [--models linear gradient_boosting ...]
         [--customers 3000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def trained_zoo(home: Path, customers: int, models: list[str] | None) -> tuple[dict, object]:
    """The backtest models and the scoring snapshot of one small shop's pipeline run in `home` (reused if there)."""
    import dagster as dg

    os.environ.update(BENTOML_HOME=str(home / "bentoml"), DAGSTER_HOME=str(home / "dagster"))
    from ml import pipeline
    from ml.models.zoo import load_model
    from tests.scenario import ensure_manifest, materialize, shop_env

    ensure_manifest()

    overrides = {"simulator": {"n_customers": customers}, "training": {"fast": True, "search_budget_seconds": 0}}
    if models:
        overrides["training"]["models"] = models
    with shop_env(home, **overrides):
        from orchestration.assets.evaluation import backtest_dir
        from orchestration.assets.modeling import datasets_dir
        done = list(home.glob("models/backtest/*/*/model.json"))
        if not done:
            (home / "dagster").mkdir(parents=True, exist_ok=True)
            log(f"pipeline on a {customers:,}-customer shop")
            stdout = os.dup(1)
            os.dup2(2, 1)  # dbt's lines go to stderr with the progress: stdout is the JSON figures
            try:
                with dg.instance_for_test() as instance:
                    materialize(home, yaml_cfg(home), instance,
                                selection=dg.AssetSelection.keys("backtest_model").upstream())
            finally:
                sys.stdout.flush()
                os.dup2(stdout, 1)
            done = list(home.glob("models/backtest/*/*/model.json"))
        cutoff = done[0].parent.parent.name
        zoo = {p.parent.name: load_model(p.parent) for p in sorted(backtest_dir(cutoff).glob("*/model.json"))}
        snapshot = pipeline.read_windows(datasets_dir(cutoff)).score
    return zoo, snapshot


def yaml_cfg(home: Path) -> dict:
    import yaml
    return yaml.safe_load((home / "clv.yaml").read_text())


def tiled(window, rows: int):
    """`window` repeated to `rows` customers with distinct ids (the same feature rows over and over), unlabelled."""
    out = window.take(np.resize(np.arange(len(window)), rows))
    out.features["customer_id"] = [f"c{i}" for i in range(rows)]
    out.labels = None
    return out


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - start, 2)


def profile(name: str, model, window) -> dict:
    from ml import pipeline
    from ml.evaluation import explain as ex
    from serving import scores, store

    proc = psutil.Process()
    row = {"model": name, "rows": len(window)}
    _, row["predict_s"] = timed(lambda: model.predict(window.features, window.sequences, window.events))
    (groups, names, eff), row["explain_predictions_s"] = timed(lambda: ex.group_effects(
        model, window.features, window.sequences, window.events))
    row["groups"] = len(names)
    _, row["explain_predictions_anew_s"] = timed(lambda: ex.group_effects(  # each group's run encoding anew
        model, window.features, window.sequences, window.events, reuse=False))
    _, row["explain_words_s"] = timed(lambda: ex.reasons_from_effects(
        model, window.features, window.sequences, groups, names, eff, 3))
    frame, row["score_frame_s"] = timed(lambda: pipeline.score_frame(model, window))
    frame["model_version"] = "v"
    reused, row["publish_reused_s"] = timed(lambda: store.scored_by(frame, "v", window)
                                            and store.agrees(model, window, frame) and scores.answers_of(frame))
    assert reused is not False, "the frame was not recognised as the model's"
    _, row["publish_anew_s"] = timed(lambda: scores.score(model, window))
    _, row["answers_build_s"] = timed(lambda: scores.Answers.build(reused, "v"))
    row["rss_gib"] = round(proc.memory_info().rss / 2**30, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--models", nargs="+", help="zoo members (default: the shop's clv.yaml, all)")
    parser.add_argument("--customers", type=int, default=3_000, help="the small shop the models train on")
    parser.add_argument("--keep", type=Path, help="work folder to keep and reuse (default: a temporary one)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="clv_scoring_"))
    try:
        zoo, snapshot = trained_zoo(work, args.customers, args.models)
        for rows in args.rows:
            window = tiled(snapshot, rows)
            for name, model in zoo.items():
                if args.models and name not in args.models:
                    continue
                log(f"{name} on {rows:,} rows")
                print(json.dumps(profile(name, model, window)), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
