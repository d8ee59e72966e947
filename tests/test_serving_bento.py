"""The packaged API: `bentoml build` offline, exported and imported into an empty store, served from outside the
repository, answers as the development server does."""
from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from tests.serving_api import BENTOML, REPO, TEST_KEY, copy_store, running_api, same_answers, shared_api


@pytest.fixture(scope="session")
def api(request, tmp_path_factory, clean_shop):
    return shared_api(request, tmp_path_factory)


def bentoml(*args: str, home, cwd=REPO) -> str:
    out = subprocess.run([str(BENTOML), *args], cwd=cwd, env={**os.environ, "BENTOML_HOME": str(home)},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


@pytest.fixture(scope="module")
def bento(tmp_path_factory, clean_shop):
    """Built from a copy of the session's store, exported to a file, imported into an empty BENTOML_HOME."""
    folder = tmp_path_factory.mktemp("bento")
    build_home = copy_store(os.environ["BENTOML_HOME"], folder / "build_home")
    tag = bentoml("build", "--output", "tag", home=build_home).strip().splitlines()[-1].removeprefix("__tag__:")
    archive = folder / "clv_service.bento"
    bentoml("export", tag, str(archive), home=build_home)
    fresh_home = folder / "fresh_home"
    bentoml("import", str(archive), home=fresh_home)
    return tag, fresh_home, folder


def test_the_bento_holds_the_model_the_code_and_pinned_requirements(bento):
    tag, home, _ = bento
    name, version = tag.split(":")
    root = home / "bentos" / name / version
    info = yaml.safe_load((root / "bento.yaml").read_text())
    models = [m["tag"] for m in info["models"]]
    assert len(models) == 1 and models[0].startswith("clv_model:")
    assert (home / "models" / "clv_model" / models[0].split(":")[1] / "scores.parquet").exists()
    assert (root / "src" / "serving" / "service.py").exists()
    assert (root / "src" / "ml" / "models" / "zoo" / "deep_ziln.py").exists()  # ml/'s stage folders too
    assert (root / "src" / "dbt_project" / "dbt_project.yml").exists()
    pinned = (root / "env" / "python" / "requirements.txt").read_text()
    assert "bentoml==1.4.40" in pinned and "torch==" in pinned


def test_the_served_bento_answers_as_the_development_server(bento, api, tmp_path):
    tag, home, folder = bento
    ids = ["C0000000", "C0000001", "C0000002"]
    rows = [{"n_orders": 2, "total_spend": 75.0, "tenure_days": 40, "recency_days": 9, "region": "europe"}]
    dev_predict = api.post("/predict", {"customer_ids": ids}).json()
    dev_features = api.post("/predict_features", {"rows": rows}).json()
    # served from an unrelated folder: the code comes from the bento, the model from its import
    with running_api(tag, home, tmp_path / "bento.log", cwd=folder, env={"CLV_API_KEY": TEST_KEY},
                     headers={"X-API-Key": TEST_KEY}) as packaged:
        bento_predict = packaged.post("/predict", {"customer_ids": ids}).json()
        bento_features = packaged.post("/predict_features", {"rows": rows}).json()
    version = yaml.safe_load((home / "bentos" / tag.replace(":", "/") / "bento.yaml").read_text())["models"][0]["tag"]

    # the development server may serve a later version of the same model (tests republish it)
    assert same_answers(bento_predict, dev_predict, version=False)
    assert same_answers(bento_features, dev_features, version=False)
    assert {a["model_version"] for a in bento_predict} == {version.split(":")[1]}
