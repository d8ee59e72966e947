"""Cutoffs as Dagster partitions: one time window per period (clv.yaml `cutoffs`), keyed by the cutoff date.

The built-in shop's cutoffs end at the simulator's last day; a user's shop has one per period up to today (its
exports grow). Which of them the data covers is decided at run time (ml.data.plan.latest_cutoff).
"""
import warnings
from datetime import date, timedelta

import dagster as dg

from ml import settings
from ml.data.plan import PlanError, cutoff_on_or_before, latest_cutoff

FORMAT = "%Y-%m-%d"
ORDERS = dg.AssetKey(["shop", "orders"])


def cutoff_partitions(cfg: settings.PlatformConfig) -> dg.TimeWindowPartitionsDefinition:
    cut = cfg.cutoffs
    first = cut.first_date
    # cron's weekday: 0 = Sunday; Python's isoweekday: 7 = Sunday
    cron = f"0 0 * * {first.isoweekday() % 7}" if cut.every == "weekly" else "0 0 * * *"
    end = None
    if cfg.source.kind == "simulator":  # the partition window after the last cutoff must end for it to exist
        last = date.fromisoformat(cfg.simulator.end)
        end = (last + timedelta(days=cut.period_days)).strftime(FORMAT)
    return dg.TimeWindowPartitionsDefinition(cron_schedule=cron, start=first.strftime(FORMAT), fmt=FORMAT, end=end,
                                             end_offset=1)


CUTOFFS = cutoff_partitions(settings.load_config())


def data_end(cfg: settings.PlatformConfig, last_order_day: date | None) -> date | None:
    """The last day the exports cover: the simulator's last day, or the day of the newest order ingested."""
    return date.fromisoformat(cfg.simulator.end) if cfg.source.kind == "simulator" else last_order_day


def newest_cutoff(cfg: settings.PlatformConfig, last_order_day: date | None) -> str:
    """The cutoff `as_of` stands for: the configured date, or (`latest`) the newest one the data covers."""
    cut = cfg.cutoffs
    if cfg.as_of != settings.LATEST:
        on = cutoff_on_or_before(cfg.as_of_date, cut.first_date, cut.period_days)
        if on != cfg.as_of_date:
            raise PlanError(f"clv.yaml: as_of {cfg.as_of} is not a cutoff of the calendar ({cut.every} from "
                            f"{cut.first}); use 'latest' or a cutoff such as {on or cut.first}")
        return cfg.as_of
    return latest_cutoff(data_end(cfg, last_order_day), cut.first_date, cut.period_days).isoformat()


def known_cutoff(instance: dg.DagsterInstance) -> str | None:
    """The newest cutoff the last ingestion found (shop/orders metadata), None before any ingestion."""
    event = instance.get_latest_materialization_event(ORDERS)
    if event is None:
        return None
    value = event.asset_materialization.metadata.get("latest_cutoff")
    text = str(value.value) if value is not None else ""
    return text if text and not text.startswith("none") else None

# backfill_policy is marked beta; the policy below is the behaviour every partitioned asset here needs
warnings.filterwarnings("ignore", message=r"(?s).*Parameter `backfill_policy`", category=dg.BetaWarning)
# one run per cutoff in a backfill: each cutoff is its own dbt build (its window plan) and its own scores
ONE_CUTOFF_PER_RUN = dg.BackfillPolicy.multi_run(1)
