"""Test session: every path in a temporary folder, a tiny shop, dbt's manifest parsed once."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="clv-test-"))
# set before any platform module reads them
os.environ.update({
    "CLV_HOME": str(_HOME / "default"),
    "CLV_CONFIG": str(REPO / "tests" / "clv_test.yaml"),
    "BENTOML_HOME": str(_HOME / "default" / "bentoml"),
    "DAGSTER_HOME": str(_HOME / "dagster"),
    "DO_NOT_TRACK": "1",
    "BENTOML_DO_NOT_TRACK": "true",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
})
os.environ["CLV_DUCKDB_PATH"] = str(_HOME / "default" / "warehouse.duckdb")
Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
(Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

from tests.scenario import parse_dbt_project  # noqa: E402 (after the environment above)

parse_dbt_project()  # dagster-dbt reads the manifest when the definitions are imported


@pytest.fixture(scope="session")
def instance():
    import dagster as dg

    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="session")
def clean_shop(tmp_path_factory, instance):
    """The whole graph materialized once on the tiny shop: (home folder, config, run result)."""
    from tests.scenario import materialize, shop_env

    home = tmp_path_factory.mktemp("clean")
    with shop_env(home) as cfg:
        result = materialize(home, cfg, instance)
        yield home, cfg, result
