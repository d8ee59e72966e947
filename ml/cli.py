"""`clv predict`: score a shop's own orders export with the platform's pipeline, in a workspace of its own.

    clv predict --orders orders.csv --as-of 2025-12-31 --horizon-days 90 --out scores.csv \\
        [--customers customers.csv] [--events events.csv] [--columns customer_id=CustomerID,order_ts=InvoiceDate]
        [--timestamp-format "%d/%m/%Y %H:%M"] [--timezone UTC] [--cancellation-prefix C] [--workdir DIR] [--fast]

The same pieces as the Dagster graph: ml.data.ingest (bad rows quarantined) -> dbt build (subprocess, the run's vars)
-> windows -> the zoo backtested out of time -> the best servable recipe retrained at t - H -> every customer seen
up to the as-of date scored. Writes customer_id, predicted_value, p_return, value_p10, value_p50, value_p90,
lifecycle_stage (CSV, or Parquet when --out ends in .parquet). Bad input: one line on stderr, exit code 2.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from ml.lock import WorkspaceBusy, workspace_lock
from ml.settings import ENGINES

OUTPUT_COLUMNS = ["customer_id", "predicted_value", "p_return", "value_p10", "value_p50", "value_p90",
                  "lifecycle_stage"]
TABLES = ("orders", "customers", "events")


class InputError(Exception):
    """The user's arguments or files cannot be used; the message is one line."""


def parse_columns(text: str | None) -> dict[str, dict[str, str]]:
    """"customer_id=CustomerID,customers.region=Country" -> {"orders": {...}, "customers": {...}} (orders by default)."""
    mapping: dict[str, dict[str, str]] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        ours, sep, theirs = item.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise InputError(f"--columns: '{item}' is not ours=theirs (e.g. customer_id=CustomerID)")
        table, dot, column = ours.strip().rpartition(".")
        table = table if dot else "orders"
        if table not in TABLES:
            raise InputError(f"--columns: unknown table '{table}' in '{item}' (one of {', '.join(TABLES)})")
        mapping.setdefault(table, {})[column] = theirs.strip()
    return mapping


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clv", description="Customer lifetime value from your own exports.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="score every customer of an orders export over the next horizon")
    p.add_argument("--orders", required=True, type=Path, help="orders export (.csv or .parquet)")
    p.add_argument("--customers", type=Path, help="optional customers export (signup_ts, region, device, channel)")
    p.add_argument("--events", type=Path, help="optional behaviour events export (event_ts, event_type)")
    p.add_argument("--as-of", required=True, help="scoring date t (YYYY-MM-DD): predictions are for (t, t + horizon]")
    p.add_argument("--horizon-days", required=True, type=int, help="the horizon H in days")
    p.add_argument("--out", required=True, type=Path, help="where to write the scores (.csv or .parquet)")
    p.add_argument("--columns", help="our=their column names, e.g. customer_id=CustomerID,order_ts=InvoiceDate "
                                     "(prefix with customers. or events. for those files)")
    p.add_argument("--timestamp-format", help="strptime format of the timestamps, e.g. '%%d/%%m/%%Y %%H:%%M'")
    p.add_argument("--timezone", default="UTC", help="zone timestamps with a UTC offset are converted to (default "
                                                     "UTC); timestamps without one are taken to be in it")
    p.add_argument("--cancellation-prefix", help="order ids starting with this are cancellations (e.g. C)")
    p.add_argument("--sequence-weeks", type=int, default=26, help="weeks of activity the sequence encoder sees")
    p.add_argument("--engine", choices=ENGINES, default="duckdb",
                   help="what dbt builds the features on: the DuckDB file (default) or a local Spark")
    p.add_argument("--max-events", type=int, default=64, help="most recent events per customer deep_transformer reads")
    p.add_argument("--workdir", type=Path, help="keep the workspace (warehouse, models) here; default: a temp dir")
    p.add_argument("--fast", action="store_true", help="few epochs, small forests: a quick look, not the best model")
    p.add_argument("--search-budget", type=float, default=None, help="seconds for the deep model's search")
    p.add_argument("--models", help="zoo members to train, comma-separated (default: all but deep_transformer), e.g. btyd,linear,ensemble")
    p.add_argument("--reasons", action="store_true", help="add the three reasons per customer (a 'reasons' column)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    before = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it like Ctrl-C: dbt ends, the workdir is freed
    try:
        return predict(args)
    except InputError as exc:
        print(f"clv predict: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clv predict: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  one line for the user, the traceback on request
        if args.debug:
            raise
        from ml.data.build import BuildError
        from ml.data.ingest import IngestError

        known = isinstance(exc, (IngestError, BuildError, ValueError, FileNotFoundError))
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"clv predict: error: {text if known else f'{type(exc).__name__}: {text}'}", file=sys.stderr)
        return 2 if known else 1
    finally:
        signal.signal(signal.SIGTERM, before)


def _check(args) -> tuple[date, dict]:
    for flag in ("orders", "customers", "events"):
        path = getattr(args, flag)
        if path is not None and not path.is_file():
            raise InputError(f"--{flag}: {path} is not a file")
        if path is not None and path.suffix.lower() not in (".csv", ".parquet"):
            raise InputError(f"--{flag}: {path} must be a .csv or .parquet file")
    try:
        as_of = date.fromisoformat(args.as_of)
    except ValueError:
        raise InputError(f"--as-of: '{args.as_of}' is not a date (YYYY-MM-DD)") from None
    if args.horizon_days < 1:
        raise InputError(f"--horizon-days must be a positive number of days, got {args.horizon_days}")
    if args.sequence_weeks < 1:
        raise InputError(f"--sequence-weeks must be positive, got {args.sequence_weeks}")
    if args.max_events < 1:
        raise InputError(f"--max-events must be positive, got {args.max_events}")
    if args.out.suffix.lower() not in (".csv", ".parquet"):
        raise InputError(f"--out: {args.out} must end in .csv or .parquet")
    if not args.out.parent.exists():
        raise InputError(f"--out: the folder {args.out.parent} does not exist")
    return as_of, parse_columns(args.columns)


class Progress:
    """Steps and what happens inside them, on stderr, with the time since the start."""

    def __init__(self, steps: int):
        self.steps, self.step, self.started = steps, 0, time.perf_counter()

    def __call__(self, message: str, new_step: bool = False) -> None:
        if new_step:
            self.step += 1
        elapsed = time.perf_counter() - self.started
        prefix = f"[{self.step}/{self.steps}]" if new_step else "     "
        print(f"{prefix} {elapsed:7.1f}s  {message}", file=sys.stderr, flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def predict(args) -> int:
    as_of, columns = _check(args)
    say = Progress(6)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="clv-predict-"))
    try:
        with workspace_lock(workdir, "clv predict") as holder:  # one run per workdir: it rewrites the warehouse
            if holder["reaped"]:
                say(f"ended {holder['reaped']} process(es) a killed earlier run on {workdir} left behind")
            return _run(args, as_of, columns, workdir.resolve(), say)
    except WorkspaceBusy as exc:
        raise InputError(str(exc)) from None
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(args, as_of: date, columns: dict, workdir: Path, say: Progress) -> int:
    import duckdb

    from ml.data import accounting, build
    from ml import pipeline
    from ml.data.ingest import IngestError, OrderOptions
    from ml.data.plan import PlanError
    from ml.settings import TrainingConfig
    from ml.models.zoo import servable_names, with_dependencies

    exports = workdir / "exports"
    shutil.rmtree(exports, ignore_errors=True)
    exports.mkdir(parents=True)
    for table in TABLES:
        source = getattr(args, table)
        if source is not None:
            (exports / f"{table}{source.suffix.lower()}").symlink_to(source.resolve())
    db = workdir / "warehouse.duckdb"
    db.unlink(missing_ok=True)

    say(f"ingesting {', '.join(p.name for p in sorted(exports.iterdir()))} into {db}", new_step=True)
    options = OrderOptions(cancellation_prefix=args.cancellation_prefix, timezone=args.timezone)
    try:
        reports, has_customers, has_events = build.ingest_exports(db, exports, columns, args.timestamp_format,
                                                                  options)
    except IngestError as exc:  # name the user's file, not its link in the workspace
        text = str(exc)
        for link in exports.iterdir():
            text = text.replace(str(link), str(link.resolve()))
        raise InputError(text) from None
    for r in reports:
        say(f"{r.table}: {r.rows_read:,} rows read = {r.rows_accepted:,} kept + {r.rows_quarantined:,} quarantined")
        if r.reasons:
            say("  quarantined: " + ", ".join(f"{code} {n:,}" for code, n in accounting.reason_counts([r]).items())
                + " (raw.quarantine)")
    for f in accounting.file_rows(reports):
        say(f"orders money: {f['amount_read']:,.2f} read = {f['amount_kept']:,.2f} kept (sales "
            f"{f['sales_kept']:,.2f} - refunds {f['refunds_kept']:,.2f}) + {f['amount_quarantined']:,.2f} quarantined"
            + (f"; {f['rows_without_amount']:,} quarantined rows had no readable amount" if f["rows_without_amount"]
               else ""))
    if not any(r.table == "orders" and r.rows_accepted for r in reports):
        raise InputError(f"{args.orders}: no valid order rows (see raw.quarantine in {db} with --workdir)")

    training = TrainingConfig(fast=args.fast, models=[m.strip() for m in args.models.split(",")] if args.models
                              else None)
    if args.search_budget is not None:
        training.search_budget_seconds = args.search_budget
    if training.models:
        try:
            with_dependencies(training.models)
        except ValueError as exc:
            raise InputError(f"--models: {exc}") from None
    say(f"building features with dbt on {args.engine}", new_step=True)
    with duckdb.connect(str(db), read_only=True) as con:
        try:
            plan = build.window_plan(con, as_of, args.horizon_days, training.backtest_folds)
        except PlanError as exc:
            raise InputError(f"{args.orders}: {exc}") from None
    for note in plan.notes:
        say(note)
    variables = build.dbt_vars(as_of.isoformat(), args.horizon_days, args.sequence_weeks, has_customers, has_events,
                               plan, pipeline.event_stream_length(args.max_events, training.models))
    build.dbt_build(db, variables, workdir, args.engine)
    with duckdb.connect(str(db), read_only=True) as con:
        money = accounting.staging_reconciliation(con)
    say(f"staged orders: sales {money['staged_sales']:,.2f} - refunds {money['staged_refunds']:,.2f} = "
        f"{money['raw_amount']:,.2f} kept (difference {money['difference']:,.2f})")

    say(f"loading the windows: {plan.folds} backtest fold(s) at a {plan.backtest_horizon_days}-day horizon, "
        "production t-H, score t", new_step=True)
    with duckdb.connect(str(db), read_only=True) as con:
        windows = pipeline.load_windows(con, args.sequence_weeks, plan.describe())
    for role, w in windows.roles().items():
        say(f"{role}: {'none' if w is None else f'{len(w):,} customers at {w.cutoff}'}")
    if len(windows.train) == 0 or windows.train.labels is None:
        raise InputError(f"no customers before {windows.train.cutoff}: the export needs more history before --as-of")

    say("backtest: the model zoo trained on each fold, judged on the window after it", new_step=True)
    backtest = pipeline.fit_backtest(windows, training, progress=say)
    board, _, ginis = pipeline.judge_backtest(backtest, windows, progress=say)
    board = pipeline.with_fold_ginis(board, ginis)
    beyond = pipeline.beyond_training(windows)
    if beyond > pipeline.EXTRAPOLATION_SHARE:
        say(f"{beyond:.0%} of the customers scored are older than anyone at t-H: the tree-based models, which cannot "
            "extrapolate in age, come last in the choice")
    order = pipeline.choose_order(board, servable_names(backtest.models), training.promotion_margin, beyond)
    for row in board.itertuples():
        say(f"  {row.model:<20} mean Gini {row.mean_normalized_gini:.3f}  fold 0: Gini {row.normalized_gini:.3f}, "
            f"decile MAPE {row.decile_mape:.3f}, total {row.total_error:+.1%}, return AUC {row.return_auc:.3f}")
    gini = dict(zip(board["model"], board["mean_normalized_gini"].fillna(board["normalized_gini"])))
    say(f"best: {order[0]} (mean normalized Gini over {len(backtest.folds)} fold(s) {gini[order[0]]:.3f}; "
        f"BTYD {gini.get('btyd', float('nan')):.3f}, historic spend rate {gini.get('historic_spend_rate', float('nan')):.3f})")

    say(f"training {order[0]} at t-H and calibrating it", new_step=True)
    model, gave_way = pipeline.fit_champion(order, backtest.models, windows, args.horizon_days, training, progress=say)
    if gave_way:
        say(f"serving {model.name} instead of {order[0]}: " + "; ".join(gave_way))
    say(model.info.get("calibration_note", ""))

    say(f"scoring {len(windows.score):,} customers at {windows.score.cutoff}", new_step=True)
    scores = pipeline.score_frame(model, windows.score, with_reasons=args.reasons)
    out = scores[OUTPUT_COLUMNS + (["reasons"] if args.reasons else [])]
    if args.out.suffix.lower() == ".parquet":
        out.to_parquet(args.out, index=False)
    else:
        out.to_csv(args.out, index=False)
    say(f"wrote {len(out):,} rows to {args.out} (total predicted value {out['predicted_value'].sum():,.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
