"""dbt on DuckDB: staging -> features, labels, lifecycle, sequences. dbt tests appear as asset checks."""

import json

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from ml import accounting, settings
from orchestration.resources import ClvConfig, Warehouse

dbt_project = DbtProject(project_dir=settings.DBT_PROJECT_DIR, profiles_dir=settings.DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
STAGED_ORDERS = dg.AssetKey("stg_shop__orders")


def dbt_vars(cfg: settings.PlatformConfig, has_customers: bool, has_events: bool) -> dict:
    """The dbt vars of one run: the same models compute training (t - H) and scoring (t) features."""
    return {
        "as_of": cfg.as_of, "horizon_days": cfg.horizon_days, "sequence_weeks": cfg.sequence_weeks,
        "has_customers": has_customers, "has_events": has_events,
        "n_train_windows": cfg.n_train_windows,  # reaches a year before the holdout: the calibration window
    }


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, pool="duckdb")
def clv_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, clv: ClvConfig, warehouse: Warehouse):
    with warehouse.connect(read_only=True) as con:
        has = {t: con.execute(f"SELECT count(*) > 0 FROM raw.{t}").fetchone()[0] for t in ("customers", "events")}
    variables = dbt_vars(clv.platform(), has["customers"], has["events"])
    yield from dbt.cli(["build", "--vars", json.dumps(variables)], context=context).stream()
    # money from raw.orders to staging, once dbt has let go of the warehouse: an observation of stg_shop__orders
    with warehouse.connect(read_only=True) as con:
        money = accounting.staging_reconciliation(con)
    yield dg.AssetObservation(asset_key=STAGED_ORDERS, metadata={
        **{k: float(v) for k, v in money.items()}, "money_reconciles": money["difference"] == 0})
