"""The Dagster instance on PostgreSQL (dagster.postgres.yaml, as shipped) runs the flow on a small test shop with a
process per step, chosen by clv.yaml alone: its runs and events land in PostgreSQL, steps that open the warehouse
never overlap, and steps that don't run beside them."""
from __future__ import annotations

import os
import shutil
from contextlib import closing
from itertools import combinations

import dagster as dg
import psutil
import psycopg2
import pytest

from tests.postgres import throwaway_postgres
from tests.scenario import REPO, materialize, shop_env

STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
# the change that selects a process per step: clv.yaml's `execution:`; a small shop and zoo keep it quick
SHOP = {"execution": {"mode": "multiprocess", "max_concurrent": 3}, "simulator": {"n_customers": 1500},
        "training": {"models": ["btyd", "linear"]}}
# the steps after the champion: scoring (the warehouse) beside the feature drift report, the two reports that read
# scores (warehouse and Evidently both) beside publishing
TAIL = ["customer_scores", "feature_drift_report", "prediction_drift_report", "model_performance", "served_model"]


@pytest.fixture(scope="module")
def postgres():
    with throwaway_postgres() as server:
        yield server


@pytest.fixture
def pg_instance(postgres, tmp_path, monkeypatch):
    """An instance from dagster.postgres.yaml, its connection from the environment (step processes inherit it)."""
    for key, value in postgres.env().items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.postgres.yaml", home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(home))
    yield instance
    instance.dispose()


def test_the_throwaway_server_is_stopped_and_removed_after_an_error():
    with pytest.raises(RuntimeError, match="a failing test"):
        with throwaway_postgres() as server:
            with closing(psycopg2.connect(server.url)) as con, con.cursor() as cur:
                cur.execute("SELECT current_database()")
                assert cur.fetchone() == (server.db,)
            pid = int((server.folder / "data" / "postmaster.pid").read_text().split()[0])
            raise RuntimeError("a failing test")
    assert not server.folder.exists()
    try:
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # ended, not yet reaped by PID 1
    except psutil.NoSuchProcess:
        pass


def test_every_step_that_opens_the_warehouse_goes_one_at_a_time():
    from orchestration.executor import OPENS_WAREHOUSE, TAG_LIMITS
    from orchestration.run import job_named

    job = job_named("refresh_all")
    (key, value), = OPENS_WAREHOUSE.items()
    opens = {n.name for n in job.graph.nodes if "warehouse" in n.definition.required_resource_keys}
    tagged = {n.name for n in job.graph.nodes if n.definition.tags.get(key) == value}
    assert opens and opens == tagged  # the resource's users, no more, no fewer
    assert {"key": key, "limit": 1} in TAG_LIMITS
    assert job.executor_def.name == "clv"


def test_a_multiprocess_run_on_the_postgres_instance(postgres, pg_instance, tmp_path, monkeypatch):
    from ml import settings
    from orchestration.executor import OPENS_WAREHOUSE, WRITES_EVIDENTLY
    from orchestration.jobs import INGESTION
    from orchestration.partitions import newest_cutoff
    from orchestration.run import job_named, run_job

    shop = tmp_path / "shop"
    # served_model publishes this shop's champion: into a store of its own, not the one the session's API serves
    monkeypatch.setenv("BENTOML_HOME", str(shop / "bentoml"))
    tail = [dg.AssetKey(k) for k in TAIL]
    with shop_env(shop, **SHOP) as cfg:
        partition = newest_cutoff(settings.load_config(), None)
        ingest = run_job("ingest", pg_instance)
        assert ingest.success
        # training in this process: each step process first imports the platform (~20 s on two busy cores)
        materialize(shop, cfg, pg_instance, partition=partition,
                    selection=dg.AssetSelection.all() - INGESTION - dg.AssetSelection.assets(*tail))
        result = run_job("refresh_all", pg_instance, partition_key=partition, asset_selection=tail)
    run_id = result.run_id
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    ingest_pids = {e.dagster_event.pid for e in pg_instance.all_logs(ingest.run_id, of_type=STEP_EVENTS)}
    assert len(ingest_pids) == 2 and os.getpid() not in ingest_pids  # clv.yaml alone chose a process per step

    # the run and its events are PostgreSQL's rows; no SQLite file was made
    with closing(psycopg2.connect(postgres.url)) as con, con.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", [run_id])
        assert cur.fetchall() == [("SUCCESS",)]
        cur.execute("SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s GROUP BY 1", [run_id])
        counts = dict(cur.fetchall())
        cur.execute("SELECT DISTINCT asset_key FROM event_logs WHERE run_id = %s "
                    "AND dagster_event_type = 'ASSET_MATERIALIZATION'", [run_id])
        materialized = {row[0] for row in cur.fetchall()}
    job = job_named("refresh_all")
    assert counts["STEP_SUCCESS"] == counts["STEP_START"] == len(TAIL)
    assert materialized == {f'["{k}"]' for k in TAIL}
    assert not list((tmp_path / "dagster_home").rglob("*.db"))

    # a process per step (none of them this one), and the run's lock released at its end
    entries = pg_instance.all_logs(run_id, of_type=STEP_EVENTS)
    pids = {e.dagster_event.pid for e in entries}
    assert len(pids) == len(TAIL) and os.getpid() not in pids
    assert (shop / ".lock").read_text() == ""

    spans = {}
    for e in entries:
        start, end = spans.get(e.step_key, (None, None))
        spans[e.step_key] = ((e.timestamp, end) if e.dagster_event_type == dg.DagsterEventType.STEP_START
                             else (start, e.timestamp))
    tags = {n.name: n.definition.tags for n in job.graph.nodes}

    def overlap(a, b):
        return spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]

    def kind(tag):
        return {s for s in spans if tag.items() <= tags[s].items()}

    for limited in (kind(OPENS_WAREHOUSE), kind(WRITES_EVIDENTLY)):
        together = [(a, b) for a, b in combinations(sorted(limited), 2) if overlap(a, b)]
        assert len(limited) > 1 and together == [], together
    beside = [(a, b) for a in kind(OPENS_WAREHOUSE) for b in set(spans) - kind(OPENS_WAREHOUSE) if overlap(a, b)]
    assert beside, spans  # e.g. feature_drift_report while customer_scores writes
