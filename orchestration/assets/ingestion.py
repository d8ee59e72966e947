"""Ingestion: the shop's exports (built-in simulator or the user's files) into DuckDB's raw tables."""

import json
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb

from ml.data import accounting, build, ingest
from ml import settings
from ml.data.dirt import write_dirty_exports
from ml.data.plan import PlanError
from ml.data.simulator import simulate_shop
from orchestration.executor import OPENS_WAREHOUSE
from orchestration.partitions import newest_cutoff
from orchestration.resources import ClvConfig, Warehouse

SIMULATED = ".simulated.json"  # the simulator settings the built-in shop's files were written with
RAW_KEYS = {table: dg.AssetKey(["shop", table]) for table in ingest.TABLES}  # = the dbt sources' keys


def export_folder(cfg: settings.PlatformConfig) -> Path:
    if cfg.source.kind == "files":
        if not cfg.source.path:
            raise dg.Failure("clv.yaml: source.kind is 'files' but source.path is not set")
        return Path(cfg.source.path).expanduser().resolve()
    return settings.clv_home() / "shop"


@dg.asset(group_name="ingestion", kinds={"python"})
def shop_exports(clv: ClvConfig) -> dg.MaterializeResult:
    """The shop's export files. For the built-in shop, simulates it up to `simulator.end` and writes the files
    (as CSVs with injected faults when `simulator.dirty` is set, to show the quarantine at work); an unchanged
    simulator configuration keeps the files it wrote last time."""
    cfg = clv.platform()
    folder = export_folder(cfg)
    meta = {}
    if cfg.source.kind == "simulator":
        sim = cfg.simulator
        recipe = json.dumps({**asdict(sim), "horizon_days": cfg.horizon_days}, sort_keys=True)
        stamp = folder / SIMULATED
        if stamp.exists() and stamp.read_text() == recipe:
            meta["regenerated"] = False
        else:
            end = date.fromisoformat(sim.end)
            shop = simulate_shop(
                n_customers=sim.n_customers, start=sim.start, end=end, seed=sim.seed,
                truth_cutoffs=[end - timedelta(days=cfg.horizon_days), end], horizon_days=cfg.horizon_days,
                drift_from=sim.drift_from, drift_kind=sim.drift_kind,
            )
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("*"):  # a regenerated shop replaces the previous one
                old.unlink()
            if sim.dirty:
                injected = write_dirty_exports(shop, folder, seed=sim.seed)
                meta["injected_faults"] = dg.MetadataValue.md(accounting.markdown(
                    [{"fault": fault, "rows": n} for fault, n in sorted(injected.items())]))
            else:
                shop.write(folder)
            stamp.write_text(recipe)  # last: a run killed while writing regenerates next time
            meta["regenerated"] = True
    files = ingest.discover(folder)
    return dg.MaterializeResult(metadata={
        "folder": dg.MetadataValue.path(str(folder)),
        "source": cfg.source.kind,
        **{f"{t}_files": len(p) for t, p in files.items()},
        **meta,
    })


@dg.multi_asset(
    specs=[dg.AssetSpec(key, deps=[shop_exports], group_name="ingestion", kinds={"duckdb"})
           for key in RAW_KEYS.values()],
    op_tags=OPENS_WAREHOUSE,
)
def raw_tables(clv: ClvConfig, warehouse: Warehouse):
    """New export files into raw.orders / raw.customers / raw.events; bad rows into raw.quarantine with a reason."""
    cfg = clv.platform()
    folder = export_folder(cfg)
    key = ingest.pseudonym_key_from_env() if cfg.source.pseudonymize else None
    if cfg.source.pseudonymize and not key:
        raise dg.Failure(description="clv.yaml: source.pseudonymize is true but $CLV_PSEUDONYM_KEY is not set")
    with warehouse.connect() as con:
        if cfg.source.kind == "simulator" and not _already_ingested(con, folder):
            con.execute("DROP SCHEMA IF EXISTS raw CASCADE")  # a regenerated shop is a new shop: start empty
        try:
            reports = ingest.ingest_folder(con, folder, cfg.source.columns, cfg.source.timestamp_format, key,
                                           ingest.OrderOptions(cfg.source.cancellation_prefix, cfg.source.timezone))
        except ingest.IngestError as exc:
            raise dg.Failure(description=str(exc)) from None
        totals = {t: con.execute(f"SELECT count(*) FROM raw.{t}").fetchone()[0] for t in ingest.TABLES}
        last_day = build.last_order_day(con)
        stored = {t: dict(con.execute("SELECT reason, count(*) FROM raw.quarantine WHERE table_name = ? GROUP BY 1",
                                      [t]).fetchall()) for t in ingest.TABLES}
    for table, asset_key in RAW_KEYS.items():
        mine = [r for r in reports if r.table == table]
        why = accounting.reason_counts(mine)
        meta = {
            "files_ingested": sum(not r.skipped for r in mine),
            "files_skipped_already_ingested": sum(r.skipped for r in mine),
            "rows_read": sum(r.rows_read for r in mine),
            "rows_accepted": sum(r.rows_accepted for r in mine),
            "rows_quarantined": sum(r.rows_quarantined for r in mine),
            "table_rows": totals[table],
            "quarantine_reasons": dg.MetadataValue.md(accounting.markdown(
                [{"reason": reason, "rows": n} for reason, n in why.items()])),
            "quarantine_rows_total": sum(stored[table].values()),
            "quarantine_query": dg.MetadataValue.text(
                f"SELECT reason, field, value, _file, line, record FROM raw.quarantine "
                f"WHERE table_name = '{table}' ORDER BY _file, line"),
        }
        if table == "orders":
            files = accounting.file_rows(mine)
            meta.update({
                "last_order_day": str(last_day),
                "latest_cutoff": _latest_cutoff(cfg, last_day),
                "amount_read": float(sum(f["amount_read"] for f in files)),
                "amount_kept": float(sum(f["amount_kept"] for f in files)),
                "amount_quarantined": float(sum(f["amount_quarantined"] for f in files)),
                "money_balances": all(accounting.balances(f) for f in files),
                "money_by_file": dg.MetadataValue.md(accounting.markdown(files)),
            })
        yield dg.MaterializeResult(asset_key=asset_key, metadata=meta)


def _already_ingested(con, folder: Path) -> bool:
    """Whether every export file in `folder` is, by content, in raw.ingested_files already."""
    try:
        done = {r[0] for r in con.execute("SELECT sha256 FROM raw.ingested_files").fetchall()}
    except duckdb.CatalogException:
        return False
    files = [f for paths in ingest.discover(folder).values() for f in paths]
    return bool(files) and all(ingest.file_digest(f) in done for f in files)


def _latest_cutoff(cfg: settings.PlatformConfig, last_day) -> str:
    """The cutoff `as_of` stands for now (the schedules and `make up` score it), or why there is none."""
    try:
        return newest_cutoff(cfg, last_day)
    except PlanError as exc:
        return f"none: {exc}"
