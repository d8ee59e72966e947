"""`make materialize` (python -m orchestration.up), as `make up` runs it: the first run builds everything, a second
one on an unchanged shop trains and publishes nothing, a changed setting retrains, and a challenger that is not
promoted is not published."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml

REPO = Path(__file__).resolve().parent.parent


def up(home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLV_HOME": str(home), "CLV_CONFIG": str(home / "clv.yaml"),
           "CLV_DUCKDB_PATH": str(home / "warehouse.duckdb"), "DAGSTER_HOME": str(home / "dagster"),
           "BENTOML_HOME": str(home / "bentoml")}
    return subprocess.run([sys.executable, "-m", "orchestration.up"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)


def runs(home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        return list(reversed(instance.get_runs()))


def stored_models(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "bentoml" / "models" / "clv_model").iterdir() if p.name != "latest")


def registry_versions(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "models" / "registry").iterdir() if p.is_dir())


def test_a_second_make_up_on_an_unchanged_shop_trains_and_publishes_nothing(tmp_path):
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    cfg = yaml.safe_load((REPO / "tests" / "clv_test.yaml").read_text())
    cfg["simulator"]["n_customers"] = 1500
    cfg["training"]["models"] = ["btyd", "linear"]
    (home / "clv.yaml").write_text(yaml.safe_dump(cfg))

    first = up(home)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "refresh_all at cutoff 2025-12-31" in first.stderr
    jobs = [r.job_name for r in runs(home)]
    assert jobs == ["ingest", "refresh_all"], jobs
    models, versions = stored_models(home), registry_versions(home)
    assert len(models) == 1 and len(versions) == 1
    shop_files = {p.name: p.stat().st_mtime_ns for p in (home / "shop").iterdir()}

    second = up(home)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "cutoff 2025-12-31 is up to date" in second.stderr and "nothing to train or score" in second.stderr
    assert [r.job_name for r in runs(home)] == ["ingest", "refresh_all", "ingest"]  # only ingestion ran
    assert stored_models(home) == models and registry_versions(home) == versions
    assert {p.name: p.stat().st_mtime_ns for p in (home / "shop").iterdir()} == shop_files  # not simulated again

    # a changed setting is a new recipe: the whole flow runs again
    cfg["decay_threshold"] = 0.2
    (home / "clv.yaml").write_text(yaml.safe_dump(cfg))
    third = up(home)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "refresh_all at cutoff 2025-12-31" in third.stderr
    assert len(registry_versions(home)) == 2
    # the same data gives the challenger the champion's Gini: not promoted, so nothing new is published
    assert stored_models(home) == models
