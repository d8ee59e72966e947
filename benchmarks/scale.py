"""The platform at scale, in three sections (each prints one JSON object per size on stdout; progress on stderr):

- `pipeline`: the whole pipeline through the real Dagster asset graph (ingest -> dbt -> zoo training and
  evaluation -> scores -> Evidently drift -> BentoML bento), in process like the test suite runs it
  (tests/scenario.py: `dg.materialize` of every asset for the newest cutoff), on the built-in simulator's shop of
  --customers (default 1,000,000; several sizes to see how it scales) with clv.yaml's settings and the training
  overrides given here. Per Dagster step (each asset; the dbt models are one step): wall seconds from the step's
  start and success events, and the peak RSS of the process tree over that span; the run's total and peak.
  Goal: 1M customers in <= 30 min and <= 12 GiB on 2 cores.
- `dbt`: the dbt layer alone on DuckDB and on a local Spark (dbt target `spark`, ml/data/spark_engine.py) side by
  side, on the same raw tables, at --dbt-customers (default 10,000,000) with about --events-per-customer (20)
  events each. The Python simulator is far too slow for 200M events, so the raw tables are generated directly in
  DuckDB SQL, vectorised and hash-seeded (reproducible): a growing shop (sign-ups rise over the two years);
  about a third of customers never buy; buyers' purchase rates are log-normal over a life that ends with a dropout
  (exponential, mean 240 days), the first order on the sign-up day, so order counts vary from 1 to dozens; amounts
  log-normal; 3 % of orders cancelled (a sale line and a cancellation line ten minutes later), 8 % returned in
  full 3-30 days later; events of the types ingestion accepts: each sale order's funnel (view, add_to_cart,
  purchase, a review for 15 %), and browsing (view, search, add_to_cart, like, share) scaled per customer to make
  up the events-per-customer target, two thirds of it during the customer's buying life. The plan of windows is
  the one the pipeline's dbt step builds (ml/data/build.window_plan, 3 backtest folds). Spark reads the Parquet
  export of the same raw tables (not timed in the build). Per engine: build seconds (Spark's includes starting its
  JVM), peak RSS of the process tree (dbt and, for Spark, its JVM), the marts' rows (which must agree).
- `ddp`: benchmarks/ddp_throughput.py as it is (a subprocess), 1 vs 2 processes: training rows per second.

Usage: python benchmarks/scale.py [--sections pipeline dbt ddp]
         [--customers 1000000 ...] [--models btyd linear ...] [--search-budget-seconds 120] [--fast]
         [--backtest-folds 3] [--max-rows 200000]
         [--dbt-customers 10000000 ...] [--events-per-customer 20] [--max-events 0] [--engines duckdb spark]
         [--spark-driver-memory 8g] [--spark-shuffle-partitions 0] [--engine-timeout SECONDS]
         [--ddp-customers 132000] [--ddp-epochs 3]
         [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import duckdb  # noqa: E402

from benchmarks.data_layer import Stage, TreeMemory, dbt_build, slowest_nodes  # noqa: E402

START, STOP, AS_OF, HORIZON, WEEKS = "2024-01-01", "2026-01-01", "2025-12-31", 90, 26  # STOP: the day after the data
MARTS = ("cutoffs", "customer_features", "customer_labels", "customer_lifecycle", "customer_sequences", "customer_events")
GIB = 2**30


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------- pipeline

def pipeline_size(n: int, args, work: Path) -> dict:
    """One shop of n customers through every asset, on a Dagster instance of its own (in memory)."""
    import dagster as dg
    from tests.scenario import ensure_manifest

    ensure_manifest()

    home = work / f"pipeline_{n}"
    shutil.rmtree(home, ignore_errors=True)
    # set before the platform's modules read them (BentoML's store, Dagster's home: all under `home`)
    os.environ.update(BENTOML_HOME=str(home / "bentoml"), DAGSTER_HOME=str(home / "dagster"))
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    from tests.scenario import materialize, shop_env

    training = {"search_budget_seconds": args.search_budget_seconds, "fast": args.fast,
                "backtest_folds": args.backtest_folds}
    if args.models:
        training["models"] = args.models
    if args.max_rows is not None:
        training["max_rows"] = args.max_rows or None
    memory = TreeMemory(history=True)
    started = time.time()
    try:
        with shop_env(home, base=REPO / "clv.yaml", simulator={"n_customers": n}, training=training) as cfg, \
                dg.instance_for_test() as instance:
            log(f"pipeline: {n:,} customers, training {json.dumps(cfg['training'])}")
            result = materialize(home, cfg, instance)
            ended = time.time()
            steps = step_spans(instance, result.run_id)
            facts = pipeline_facts(instance, home)
    finally:
        memory.stop()
    out = {"section": "pipeline", "customers": n, "training": cfg["training"],
           "execution": cfg.get("execution", {}).get("mode", "in_process"), "success": result.success,
           "steps": {name: {"seconds": round(t1 - t0, 1),
                            "peak_rss_gib": round(memory.peak_between(t0, t1) / GIB, 2)}
                     for name, (t0, t1) in steps.items()},
           "total_seconds": round(ended - started, 1), "peak_rss_gib": round(memory.peak / GIB, 2), **facts,
           "load_average_at_end": round(os.getloadavg()[0], 2)}
    if n >= 1_000_000:
        out["goal_1m_within_30min_and_12gib"] = out["total_seconds"] <= 1800 and out["peak_rss_gib"] <= 12
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    return out


def step_spans(instance, run_id: str) -> dict[str, tuple[float, float]]:
    """Each step's (start, end) in time.time() seconds, from the run's STEP_START and STEP_SUCCESS/FAILURE events."""
    import dagster as dg

    spans: dict[str, list[float]] = {}
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    for entry in instance.all_logs(run_id, of_type=kinds):
        span = spans.setdefault(entry.step_key, [entry.timestamp, entry.timestamp])
        span[0], span[1] = min(span[0], entry.timestamp), max(span[1], entry.timestamp)
    return {key: (t0, t1) for key, (t0, t1) in sorted(spans.items(), key=lambda kv: kv[1][0])}


def pipeline_facts(instance, home: Path) -> dict:
    """What the run made: rows, the zoo's seconds per member (fold 0) and the champion (from the assets' files)."""
    from orchestration.assets import modeling

    facts: dict = {}
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        facts["rows"] = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                         for t in ("raw.orders", "raw.customers", "raw.events", "customer_scores")}
    zoo = next(iter(sorted((home / "models").rglob("zoo.json"))), None)
    if zoo is not None:
        info = json.loads(zoo.read_text())
        facts["zoo_fold0_train_seconds"] = {k: round(v, 1) for k, v in info["seconds"].items()}
        facts["zoo_failures"] = info["failures"]
        facts["search_trials"] = len(info["search_trials"])
    event = instance.get_latest_materialization_event(modeling.clv_model.key)
    if event is not None:
        md = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        facts["champion"] = {k: md.get(k) for k in ("model", "challenger_backtest_gini", "training_processes")}
    return facts


# ---------------------------------------------------------------------------------------------------------- dbt

# u(a, b): a uniform in (0, 1) from a hash of (a, b); z(a, b): a standard normal (Box-Muller on two of them)
MACROS = """
CREATE OR REPLACE TEMP MACRO u(a, b) AS ((hash(a, b) % 1000000007) + 0.5) / 1000000007.0;
CREATE OR REPLACE TEMP MACRO z(a, b) AS sqrt(-2 * ln(u(a, b))) * cos(2 * pi() * u(a, b + 1000));
CREATE OR REPLACE TEMP MACRO pick(x, names, cum) AS names[list_position(list_transform(cum, lambda c: x < c), true)];
CREATE OR REPLACE TEMP MACRO ts(day) AS make_timestamp(epoch_us(TIMESTAMP '{start}') + CAST(day * 86400e6 AS BIGINT));
"""
CUSTOMERS = """
CREATE TEMP TABLE cust AS
WITH base AS (
    SELECT i, floor({days} * sqrt(u(i, 1))) + 0.999 * u(i, 2) AS signup_day,
           u(i, 3) < 0.65 AS buys,
           exp(-4.6 + 0.9 * z(i, 4)) AS rate,              -- purchases per day while buying
           -240 * ln(u(i, 5)) AS life                      -- days until the dropout
    FROM range({n}) t(i)
)
SELECT i, 'C' || lpad(CAST(i AS VARCHAR), 8, '0') AS customer_id, signup_day,
       least({days} - 1e-6, signup_day + life) AS active_end,
       CASE WHEN buys THEN 1 + CAST(floor(rate * least({days} - signup_day, life) + u(i, 6)) AS INTEGER)
            ELSE 0 END AS n_orders
FROM base
"""
RAW_CUSTOMERS = """
INSERT INTO raw.customers
SELECT customer_id, ts(signup_day),
       pick(u(i, 7), ['north_america', 'europe', 'asia_pacific', 'latin_america'], [0.35, 0.65, 0.85, 1.01]),
       pick(u(i, 8), ['desktop', 'mobile', 'tablet'], [0.35, 0.9, 1.01]),
       pick(u(i, 9), ['organic', 'email', 'referral', 'paid_search', 'social', 'affiliate'],
            [0.3, 0.4, 0.5, 0.75, 0.9, 1.01])
FROM cust
"""
SALES = """
CREATE TEMP TABLE sale AS
WITH o AS (SELECT i, customer_id, signup_day, active_end, unnest(range(n_orders)) AS k FROM cust WHERE n_orders > 0)
SELECT i, k, customer_id, 'O' || CAST(i AS VARCHAR) || '-' || CAST(k AS VARCHAR) AS order_id,
       CASE WHEN k = 0 THEN least(signup_day + 0.3 * u(i * 1000003 + k, 11), {days} - 1e-6)
            ELSE signup_day + u(i * 1000003 + k, 12) * (active_end - signup_day) END AS day,
       greatest(round(exp(3.6 + 0.7 * z(i * 1000003 + k, 13)), 2), 1.0) AS amount,
       u(i * 1000003 + k, 14) AS fate,
       u(i * 1000003 + k, 15) AS r
FROM o
"""
RAW_ORDERS = """
INSERT INTO raw.orders
WITH lines AS (
    SELECT order_id, customer_id, day, amount, r, 'completed' AS status FROM sale
    UNION ALL
    SELECT order_id, customer_id, least(day + 10 / 1440, {days} - 1e-6), -amount, r, 'cancelled' FROM sale
    WHERE fate < 0.03
    UNION ALL
    SELECT order_id, customer_id, day + 3 + 27 * r, -amount, r, 'returned' FROM sale
    WHERE fate >= 0.03 AND fate < 0.11 AND day + 3 + 27 * r < {days}
)
SELECT order_id, customer_id, ts(day), amount,
       1 + CAST(floor(amount / 60 * 2 * r) AS INTEGER), NULL,
       status, pick(r, ['apparel', 'electronics', 'home', 'beauty', 'sports', 'books'],
                    [0.1667, 0.3333, 0.5, 0.6667, 0.8333, 1.01])
FROM lines
"""
# each sale order's funnel: a view, the cart, the purchase, and for 15 % a review 3-14 days later
FUNNEL = """
INSERT INTO raw.events
WITH s AS (SELECT s.customer_id, s.day, s.r, c.signup_day FROM sale s JOIN cust c USING (i) WHERE s.fate >= 0.03)
SELECT customer_id, ts(greatest(day - 0.05 - 2 * r, signup_day)), 'view' FROM s
UNION ALL SELECT customer_id, ts(greatest(day - 0.01 - r, signup_day)), 'add_to_cart' FROM s
UNION ALL SELECT customer_id, ts(day), 'purchase' FROM s
UNION ALL SELECT customer_id, ts(day + 3 + 11 * r), 'review' FROM s WHERE r < 0.15 AND day + 3 + 11 * r < {days}
"""
# browsing: a per-customer weight (log-normal, more for buyers), scaled so that the events total the target
BROWSING = """
INSERT INTO raw.events
WITH w AS (
    SELECT i, customer_id, signup_day, active_end,
           exp(0.8 * z(i, 20)) * (1 + least(n_orders, 20)) AS weight FROM cust
), scaled AS (
    SELECT *, CAST(floor(weight * {scale} + u(i, 21)) AS INTEGER) AS n_browse FROM w
), e AS (
    SELECT i, customer_id, signup_day, active_end, unnest(range(n_browse)) AS k FROM scaled WHERE n_browse > 0
)
SELECT customer_id,
       ts(CASE WHEN u(i * 1000003 + k, 22) < 0.67 THEN signup_day + u(i * 1000003 + k, 23) * (active_end - signup_day)
               ELSE signup_day + u(i * 1000003 + k, 23) * ({days} - 1e-6 - signup_day) END),
       pick(u(i * 1000003 + k, 24), ['view', 'search', 'add_to_cart', 'like', 'share'], [0.62, 0.86, 0.94, 0.99, 1.01])
FROM e
"""


def generate_raw(db: Path, n: int, events_per_customer: float) -> dict[str, int]:
    """The raw tables of a shop of n customers, generated in DuckDB SQL (see the module's docstring)."""
    from tests.dbt.conftest import RAW_DDL

    days = (date.fromisoformat(STOP) - date.fromisoformat(START)).days
    fmt = {"n": n, "days": days, "start": START}
    with duckdb.connect(str(db)) as con:
        con.execute("SET preserve_insertion_order = false")
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        for table, ddl in RAW_DDL.items():
            con.execute(f"CREATE OR REPLACE TABLE raw.{table} ({ddl})")
        for sql in (MACROS, CUSTOMERS, RAW_CUSTOMERS, SALES, RAW_ORDERS, FUNNEL):
            con.execute(sql.format(**fmt))
        funnel = con.execute("SELECT count(*) FROM raw.events").fetchone()[0]
        weights = con.execute("SELECT sum(exp(0.8 * z(i, 20)) * (1 + least(n_orders, 20))) FROM cust").fetchone()[0]
        scale = max(events_per_customer * n - funnel, 0) / weights
        con.execute(BROWSING.format(scale=repr(scale), **fmt))
        return {t: con.execute(f"SELECT count(*) FROM raw.{t}").fetchone()[0]
                for t in ("customers", "orders", "events")}


def dbt_vars(db: Path, max_events: int) -> dict:
    """The vars of the pipeline's dbt step for the newest cutoff (its window plan: 3 backtest folds); event streams
    of `max_events` (0, the default zoo's: none built; 64 when deep_transformer trains)."""
    from ml.data import build

    with duckdb.connect(str(db), read_only=True) as con:
        plan = build.window_plan(con, date.fromisoformat(AS_OF), HORIZON, 3)
    return build.dbt_vars(AS_OF, HORIZON, WEEKS, True, True, plan, max_events)


def dbt_size(n: int, args, work: Path) -> dict:
    from ml.data import spark_engine

    root = work / f"dbt_{n}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    db, spark_dir = root / "warehouse.duckdb", root / "spark"
    memory = TreeMemory()
    prep: dict = {}
    engines: dict = {}
    try:
        with Stage(prep, "generate_raw", memory) as f:
            rows = generate_raw(db, n, args.events_per_customer)
            f.update(rows=sum(rows.values()), **{f"{k}_rows": v for k, v in rows.items()})
        variables = dbt_vars(db, args.max_events)
        if "spark" in args.engines:
            with Stage(prep, "export_parquet", memory) as f:
                f.update(rows=sum(spark_engine.export_raw(db, spark_dir).values()),
                         bytes=sum(p.stat().st_size for p in (spark_dir / "raw").rglob("*.parquet")))
        prep["duckdb_file_bytes"] = db.stat().st_size
        partitions = args.spark_shuffle_partitions or max(2, rows["events"] // 3_000_000)
        for engine in args.engines:
            out_dir = root / f"build_{engine}"
            out_dir.mkdir()
            target, env = (None, None)
            if engine == "spark":
                target, env = spark_engine.TARGET, {
                    **spark_engine.spark_env(spark_dir),
                    "PYSPARK_SUBMIT_ARGS": f"--driver-memory {args.spark_driver_memory} pyspark-shell",
                    "CLV_SPARK_SHUFFLE_PARTITIONS": str(partitions)}
            log(f"dbt build on {engine}, {n:,} customers")
            try:
                with Stage(engines, engine, memory) as f:
                    f.update(rows=sum(rows.values()))
                    result = dbt_build(db, out_dir, variables, target, env, timeout=args.engine_timeout)
                    f.update(tests=result.stdout.count(" PASS "),
                             slowest_nodes=slowest_nodes(out_dir / "target" / "run_results.json"))
            except TimeoutError as exc:  # Stage has recorded the seconds and memory until the kill
                engines[engine].update(finished=False, note=str(exc))
                continue
            if engine == "duckdb":
                with duckdb.connect(str(db), read_only=True) as con:
                    engines[engine]["mart_rows"] = {m: con.execute(f"SELECT count(*) FROM main.{m}").fetchone()[0]
                                                    for m in MARTS}
            else:
                with duckdb.connect() as con:
                    engines[engine]["mart_rows"] = {m: con.execute(
                        f"SELECT count(*) FROM read_parquet('{spark_engine.table_folder(spark_dir, m)}/*.parquet')"
                    ).fetchone()[0] for m in MARTS}
        disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    finally:
        memory.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    out = {"section": "dbt", "customers": n, "events_per_customer": round(rows["events"] / n, 1),
           "max_events": args.max_events, "spark_shuffle_partitions": partitions if "spark" in args.engines else None,
           "raw_rows": rows, "windows": len(variables["windows"]) if isinstance(variables.get("windows"), list)
           else variables.get("windows"), "prepare": prep, "engines": engines, "work_bytes_at_end": disk,
           "load_average_at_end": round(os.getloadavg()[0], 2)}
    done = {name: e for name, e in engines.items() if e.get("finished", True)}
    if len(done) > 1:
        first, *others = done.values()
        out["same_mart_rows"] = all(e["mart_rows"] == first["mart_rows"] for e in others)
        if "duckdb" in done and "spark" in done:
            out["spark_over_duckdb_seconds"] = round(engines["spark"]["seconds"] / engines["duckdb"]["seconds"], 2)
    return out


# ---------------------------------------------------------------------------------------------------------- ddp

def ddp(args, work: Path) -> dict:
    """benchmarks/ddp_throughput.py for 1 and 2 processes, its JSON as it prints it, plus the tree's peak RSS."""
    command = [sys.executable, str(REPO / "benchmarks" / "ddp_throughput.py"), "--customers", str(args.ddp_customers),
               "--epochs", str(args.ddp_epochs), "--processes", "1", "2", "--keep", str(work / "ddp")]
    memory = TreeMemory()
    started = time.perf_counter()
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    finally:
        memory.stop()
    return {"section": "ddp", "command": " ".join(command[1:]), **json.loads(done.stdout),
            "wall_seconds": round(time.perf_counter() - started, 1), "peak_rss_gib": round(memory.peak / GIB, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=["pipeline", "dbt", "ddp"], default=["pipeline", "dbt", "ddp"])
    parser.add_argument("--customers", type=int, nargs="+", default=[1_000_000], help="pipeline: shop sizes")
    parser.add_argument("--models", nargs="+", help="pipeline: zoo members to train (default: clv.yaml's, all)")
    parser.add_argument("--search-budget-seconds", type=float, default=120.0, help="pipeline: the deep search's")
    parser.add_argument("--fast", action="store_true", help="pipeline: training.fast (few epochs, small forests)")
    parser.add_argument("--backtest-folds", type=int, default=3, help="pipeline: training.backtest_folds")
    parser.add_argument("--max-rows", type=int, help="pipeline: training.max_rows (default: clv.yaml's; 0: every customer)")
    parser.add_argument("--dbt-customers", type=int, nargs="+", default=[10_000_000], help="dbt: shop sizes")
    parser.add_argument("--events-per-customer", type=float, default=20.0)
    parser.add_argument("--max-events", type=int, default=0,
                        help="dbt: customer_events' length (0: the default zoo's, none built; 64: with deep_transformer)")
    parser.add_argument("--engines", nargs="+", choices=["duckdb", "spark"], default=["duckdb", "spark"])
    parser.add_argument("--spark-driver-memory", default="8g", help="dbt: Spark's driver (the local JVM) heap")
    parser.add_argument("--spark-shuffle-partitions", type=int, default=0,
                        help="dbt: Spark's shuffle partitions (0: one per 3M events, at least 2, the profile's default)")
    parser.add_argument("--engine-timeout", type=float, default=None,
                        help="dbt: seconds after which an engine's build is stopped (reported as not finished)")
    parser.add_argument("--ddp-customers", type=int, default=132_000)
    parser.add_argument("--ddp-epochs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one, removed)")
    args = parser.parse_args()
    # the JSON goes to the real stdout; whatever else writes there (dbt's log lines, which dagster-dbt streams to
    # this process's stdout, torchrun, BentoML) goes to stderr with the progress
    results = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)

    def emit(obj: dict) -> None:
        print(json.dumps(obj), file=results, flush=True)

    work = args.keep or Path(tempfile.mkdtemp(prefix="clv-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if "pipeline" in args.sections:
            for n in args.customers:
                emit(pipeline_size(n, args, work))
        if "dbt" in args.sections:
            for n in args.dbt_customers:
                emit(dbt_size(n, args, work))
        if "ddp" in args.sections:
            emit(ddp(args, work))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
