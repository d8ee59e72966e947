"""dbt on the configured engine (clv.yaml `engine`: DuckDB, or a local Spark): staging -> features, labels,
lifecycle, sequences. dbt tests appear as asset checks."""

import json

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from ml.data import accounting, build
from ml import pipeline, registry, settings
from ml.data.plan import PlanError, matured_cutoff
from orchestration.executor import OPENS_WAREHOUSE
from orchestration.partitions import CUTOFFS, ONE_CUTOFF_PER_RUN, data_end
from orchestration.resources import ClvConfig, Warehouse

dbt_project = DbtProject(project_dir=settings.DBT_PROJECT_DIR, profiles_dir=settings.DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
STAGED_ORDERS = dg.AssetKey("stg_shop__orders")


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, op_tags=OPENS_WAREHOUSE, partitions_def=CUTOFFS,
            backfill_policy=ONE_CUTOFF_PER_RUN)
def clv_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, clv: ClvConfig, warehouse: Warehouse):
    """The features, labels, lifecycle and sequences at the partition's cutoff and the windows of its plan (the
    incremental models keep every cutoff computed so far)."""
    cfg = clv.platform(context.partition_key)
    cut = cfg.cutoffs
    with warehouse.connect(read_only=True) as con:
        has = {t: con.execute(f"SELECT count(*) > 0 FROM raw.{t}").fetchone()[0] for t in ("customers", "events")}
        end = data_end(cfg, build.last_order_day(con))
        if end is not None and end < cfg.as_of_date:
            raise dg.Failure(description=f"cutoff {cfg.as_of} is after the last day the exports cover ({end}): "
                                         "its data is not there yet")
        matured = matured_cutoff(cfg.as_of_date, cfg.horizon_days, cut.first_date, cut.period_days)
        try:
            plan = build.window_plan(con, cfg.as_of_date, cfg.horizon_days, cfg.training.backtest_folds, matured)
        except PlanError as exc:
            raise dg.Failure(description=str(exc)) from None
    streams = pipeline.event_stream_length(cfg.max_events, cfg.training.models, registry.champion_dir())
    variables = build.dbt_vars(cfg.as_of, cfg.horizon_days, cfg.sequence_weeks, has["customers"], has["events"], plan,
                               streams)
    context.log.info(f"window plan: {plan.describe()}; event streams: "
                     + (f"the last {streams} events" if streams else "none (no member to train or score reads them)"))
    with build.on_engine(warehouse.path, cfg.engine, settings.spark_dir()) as (args, env), \
            settings.environment(env):
        yield from dbt.cli(["build", *args, "--vars", json.dumps(variables)], context=context).stream()
    # money from raw.orders to staging, once dbt has let go of the warehouse: an observation of stg_shop__orders
    with warehouse.connect(read_only=True) as con:
        money = accounting.staging_reconciliation(con)
    yield dg.AssetObservation(asset_key=STAGED_ORDERS, metadata={
        **{k: float(v) for k, v in money.items()}, "money_reconciles": money["difference"] == 0})

