"""The prediction API for real: `bentoml serve` on loopback, answering from the model in the BentoML store."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from ml.data.windows import CATEGORICAL
from tests.serving_api import TEST_KEY, publish_copy, running_api, same_answers, shared_api

PREDICTION = ["predicted_value", "p_return", "value_p10", "value_p50", "value_p90"]


@pytest.fixture(scope="session")
def api(request, tmp_path_factory, clean_shop):
    return shared_api(request, tmp_path_factory)


@pytest.fixture(scope="module")
def served(clean_shop):
    """The published version in process, with what the model computes for the whole snapshot (the customer_scores
    computation) and its reasons."""
    from ml.evaluation.explain import explain
    from serving import store

    version = store.load()
    snap = version.snapshot
    with store.single_threaded_torch():
        predictions = version.model.predict(snap.features, snap.sequences)
        reasons = explain(version.model, snap.features, snap.sequences, top_k=3)
    return version, predictions, reasons


def position(served, customer_id: str) -> int:
    return int(np.flatnonzero(served[0].snapshot.customer_ids == customer_id)[0])


def feature_row(snapshot, i: int) -> dict:
    row = snapshot.features.iloc[i]
    out = {c: (None if pd.isna(row[c]) else float(row[c])) for c in snapshot.features.columns
           if c not in ("customer_id", "cutoff_date", *CATEGORICAL)}
    out.update({c: (None if pd.isna(row[c]) else str(row[c])) for c in CATEGORICAL})
    out["customer_id"] = str(row["customer_id"])
    out["weekly_activity"] = snapshot.sequences[i].tolist()
    return out


def test_health_and_metrics(api):
    assert httpx.get(f"{api.url}/livez").status_code == 200
    assert httpx.get(f"{api.url}/readyz").status_code == 200
    api.post("/predict", {"customer_ids": ["NOT-A-CUSTOMER"]})
    metrics = httpx.get(f"{api.url}/metrics")
    assert metrics.status_code == 200
    assert 'endpoint="/predict"' in metrics.text and "request_duration_seconds" in metrics.text


def test_predict_equals_the_model_in_process(api, served):
    version, predictions, reasons = served
    ids = [str(c) for c in version.snapshot.customer_ids[[0, 7, 42, 7]]]  # a duplicate is answered twice
    response = api.post("/predict", {"customer_ids": ids})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [row["customer_id"] for row in body] == ids
    for row in body:
        i = position(served, row["customer_id"])
        # the numbers the model computes in process; only the order of float sums may differ (a random forest in
        # an ensemble adds its trees' votes in thread order), so they agree to 1e-9, not to an approximation
        for col in PREDICTION:
            want = float(predictions[col].iloc[i])
            assert row[col] == (None if math.isnan(want) else pytest.approx(want, rel=1e-9, abs=1e-12)), col
        assert row["lifecycle_stage"] == version.snapshot.lifecycle.iloc[i]
        assert row["model_version"] == version.version
        assert [(r["feature"], r["value"]) for r in row["reasons"]] == [(r.feature, r.value) for r in reasons[i]]
        assert [r["effect"] for r in row["reasons"]] == pytest.approx([r.effect for r in reasons[i]], rel=1e-9)


def test_predict_equals_the_customer_scores_table(api, served, clean_shop):
    """/predict answers what the pipeline wrote to `customer_scores` (the warehouse of the Dagster asset) for the
    served snapshot's cutoff and model: every scored customer, the same numbers, lifecycle stage and reasons. The
    test above compares the API with the served version's own computation, so it cannot see the two diverge."""
    table = scores_table(clean_shop[0])
    first = api.post("/predict", {"customer_ids": [str(table["customer_id"].iloc[0])]})
    assert first.status_code == 200, first.text
    version = first.json()[0]["model_version"]
    labels = served_labels(api.home, version)  # what the API serves: the snapshot's cutoff, the registry's model
    expected = table[(table["cutoff_date"].astype(str).str[:10] == labels["scoring_cutoff"])
                     & (table["model_version"] == labels["model_id"])].set_index("customer_id")
    assert expected.index.is_unique and len(expected) > 1000, (
        labels, table.groupby(["cutoff_date", "model_version"]).size())
    assert set(expected.index) == set(served[0].snapshot.customer_ids.astype(str))  # every served customer, no other

    ask = [str(c) for c in expected.index]
    response = api.post("/predict", {"customer_ids": ask})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [row["customer_id"] for row in body] == ask and {row["model_version"] for row in body} == {version}
    for row in body:
        want = expected.loc[row["customer_id"]]
        for col in PREDICTION:  # written by another process: equal to float noise
            assert row[col] == (None if pd.isna(want[col]) else pytest.approx(float(want[col]), rel=1e-9, abs=1e-12)), (
                row["customer_id"], col)
        assert row["lifecycle_stage"] == want["lifecycle_stage"], row["customer_id"]
        reasons = None if row["reasons"] is None else "; ".join(r["text"] for r in row["reasons"])
        assert reasons == want["reasons"], row["customer_id"]


def scores_table(home: Path) -> pd.DataFrame:
    """The customer_scores table of the Dagster asset, read from the shop's warehouse."""
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT * FROM main.customer_scores").df()


def served_labels(bentoml_home: Path, version: str) -> dict:
    """The labels a published version was stored with (its scoring cutoff and the registry's model id)."""
    import yaml

    return yaml.safe_load((bentoml_home / "models" / "clv_model" / version / "model.yaml").read_text())["labels"]


def test_reasons_can_be_left_out(api, served):
    ids = [str(served[0].snapshot.customer_ids[3])]
    with_reasons = api.post("/predict", {"customer_ids": ids}).json()[0]
    without = api.post("/predict", {"customer_ids": ids, "reasons": False}).json()[0]
    assert without["reasons"] is None and len(with_reasons["reasons"]) == 3
    assert {k: v for k, v in without.items() if k != "reasons"} == {k: v for k, v in with_reasons.items()
                                                                    if k != "reasons"}


def test_predict_features_runs_the_model_on_feature_rows(api, served):
    version = served[0]
    rows = [feature_row(version.snapshot, i) for i in (3, 11, 250)]
    minimal = {"n_orders": 0, "total_spend": 0.0, "tenure_days": 12, "reasons": False}
    response = api.post("/predict_features", {"rows": [*rows, minimal]})
    assert response.status_code == 200, response.text
    body = response.json()
    known = api.post("/predict", {"customer_ids": [r["customer_id"] for r in rows]}).json()
    for got, want in zip(body, known):  # the same answer as for the scored customer (float32, another batch)
        assert got["customer_id"] == want["customer_id"]
        for col in PREDICTION:
            assert got[col] == pytest.approx(want[col], rel=1e-4, abs=1e-6), col
        assert got["lifecycle_stage"] == want["lifecycle_stage"]
        assert got["model_version"] == version.version
        assert [r["feature"] for r in got["reasons"]] and len(got["reasons"]) == 3
    new = body[-1]
    assert new["customer_id"] is None and new["lifecycle_stage"] == "potential" and new["reasons"] is None
    assert all(isinstance(new[c], float) and math.isfinite(new[c]) for c in ("predicted_value", "p_return"))


def test_predict_features_answers_as_the_batch_scoring(api, served):
    """The answers for feature rows are the customer_scores computation (ml.pipeline.score_frame) of the same rows:
    predictions, lifecycle stage and reasons, in request order, a row without reasons left without."""
    from ml.pipeline import score_frame
    from serving.store import single_threaded_torch

    version = served[0]
    positions = [0, 7, 42, 250, 7, len(version.snapshot) - 1]
    rows = [feature_row(version.snapshot, i) for i in positions]
    rows[1]["reasons"] = False
    response = api.post("/predict_features", {"rows": rows})
    assert response.status_code == 200, response.text
    with single_threaded_torch():
        scored = score_frame(version.model, version.snapshot).iloc[positions]
    for got, (_, want), asked in zip(response.json(), scored.iterrows(), [r.get("reasons", True) for r in rows]):
        assert got["customer_id"] == want["customer_id"]
        for col in PREDICTION:
            assert got[col] == pytest.approx(float(want[col]), rel=1e-6, abs=1e-9), col
        assert got["lifecycle_stage"] == want["lifecycle_stage"]
        assert ("; ".join(r["text"] for r in got["reasons"]) if asked else got["reasons"]) == \
            (want["reasons"] if asked else None)


def test_the_model_batches_concurrent_feature_requests(api, served):
    """Adaptive batching: concurrent single-row requests are answered together, each with its own answer."""
    import concurrent.futures

    rows = [feature_row(served[0].snapshot, i) for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda r: api.post("/predict_features", {"rows": [r]}), rows))
    assert all(a.status_code == 200 for a in answers)
    assert [a.json()[0]["customer_id"] for a in answers] == [r["customer_id"] for r in rows]
    assert 'adaptive_batch_size_bucket' in httpx.get(f"{api.url}/metrics").text


def _features(**overrides) -> dict:
    return {"rows": [{"n_orders": 1, "total_spend": 10.0, "tenure_days": 5, **overrides}]}


BAD_REQUESTS = [
    ("/predict", {"customer_ids": ["NOT-A-CUSTOMER", "C0000000"]}, 404, "unknown customer id(s): NOT-A-CUSTOMER"),
    ("/predict", {"customer_ids": "C0000000"}, 400, "customer_ids: Input should be a valid array"),
    ("/predict", {"customer_ids": [1]}, 400, "customer_ids[0]: Input should be a valid string"),
    ("/predict", {"ids": ["C0000000"]}, 400, "customer_ids: Field required"),
    ("/predict", {"customer_ids": []}, 400, "customer_ids: List should have at least 1 item"),
    ("/predict", {"customer_ids": ["C0000000"] * 10_001}, 400, "customer_ids: List should have at most 10000 items"),
    ("/predict", {"customer_ids": ["C0000000"], "reasons": "yes"}, 400, "reasons: Input should be a valid boolean"),
    ("/predict", b'{"customer_ids": [', 400, "body: Invalid JSON"),
    ("/predict", b"[]", 400, "body: Input should be an object"),
    ("/predict_features", _features(n_orders="2"), 400, "rows[0].n_orders: Input should be a valid number"),
    ("/predict_features", {"rows": [{"n_orders": 1}]}, 400, "rows[0].total_spend: Field required"),
    ("/predict_features", _features(n_order=1), 400, "rows[0].n_order: Extra inputs are not permitted"),
    ("/predict_features", _features(weekly_activity=[[1, 2, 3, 4, 5, 6]]), 400, "rows[0].weekly_activity"),
    ("/predict_features", _features(weekly_activity=[[1, 2, 3]] * 16), 400, "rows[0].weekly_activity[0]"),
    ("/predict_features", b'{"rows": [{"n_orders": NaN, "total_spend": 1, "tenure_days": 1}]}', 400,
     "rows[0].n_orders: Input should be a finite number"),
    ("/predict_features", {"rows": [_features()["rows"][0]] * 1_001}, 400, "rows: List should have at most 1000"),
    # outside the feature's domain: counts, days and order values are never negative
    ("/predict_features", _features(n_orders=-5), 400, "rows[0].n_orders: Input should be greater than or equal to 0"),
    ("/predict_features", {"rows": [*_features()["rows"], *_features(tenure_days=-10)["rows"]]}, 400,
     "rows[1].tenure_days: Input should be greater than or equal to 0"),
    ("/predict_features", _features(avg_order_value=-1.5), 400, "rows[0].avg_order_value: Input should be greater"),
    ("/predict_features", _features(weekend_order_share=1.5), 400, "rows[0].weekend_order_share: Input should be less"),
]


@pytest.mark.parametrize("route, body, status, message", BAD_REQUESTS, ids=[m for *_, m in BAD_REQUESTS])
def test_bad_input_is_a_clear_4xx(api, route, body, status, message):
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) else {}
    response = api.post(route, None if kwargs else body, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in response.text


def test_refunds_may_make_spend_negative(api):
    """Net spend and repeat-day spend net refunds, so a negative value is a customer's history, answered."""
    response = api.post("/predict_features", _features(total_spend=-20.0, spend_30d=-20.0, btyd_monetary=-4.0))
    assert response.status_code == 200, response.text
    assert math.isfinite(response.json()[0]["predicted_value"])


def test_body_type_and_size_are_checked_before_parsing(api):
    wrong_type = api.post("/predict", content=b'{"customer_ids": ["C0000000"]}', headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415 and "must be JSON" in wrong_type.json()["error"]
    huge = api.post("/predict", content=b" " * (9 * 1024 * 1024), headers={"content-type": "application/json"})
    assert huge.status_code == 413 and "at most" in huge.json()["error"]


def test_the_api_key_protects_the_prediction_routes(api):
    ids = {"customer_ids": ["C0000000"]}
    for route, body in [("/predict", ids), ("/predict_features", _features())]:
        assert httpx.post(f"{api.url}{route}", json=body).status_code == 401
        assert httpx.post(f"{api.url}{route}", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    bearer = httpx.post(f"{api.url}/predict", json=ids, headers={"Authorization": f"Bearer {TEST_KEY}"})
    assert bearer.status_code in (200, 404)
    assert "CLV_API_KEY" in httpx.post(f"{api.url}/predict", json=ids).json()["error"]
    for open_route in ("/livez", "/readyz", "/metrics"):
        assert httpx.get(f"{api.url}{open_route}").status_code == 200


def test_binds_loopback_and_logs_no_customer_ids(api, served):
    ids = [str(c) for c in served[0].snapshot.customer_ids[:20]]
    api.post("/predict", {"customer_ids": ids})
    api.post("/predict", {"customer_ids": ["SECRET-ID-42"]})
    api.post("/predict", {"customer_ids": ["SECRET-ID-43", 7]})  # a validation error that quotes its input
    api.post("/predict_features", {"rows": [feature_row(served[0].snapshot, 0)]})
    time.sleep(1)
    logs = api.logs()
    assert "listening on http://127.0.0.1:" in logs  # no --host given: the service's default
    assert "serving clv_model:" in logs
    leaked = [c for c in [*ids, "SECRET-ID-42", "SECRET-ID-43"] if c in logs]
    assert not leaked and "Traceback" not in logs


def test_a_new_version_reaches_the_running_api_without_a_restart(api, served):
    """Published while the API runs (by another process, as the pipeline does): every worker switches to it."""
    ids = [str(served[0].snapshot.customer_ids[5])]
    before = api.post("/predict", {"customer_ids": ids}).json()[0]
    new_tag = publish_copy(api.home)
    new_version = new_tag.split(":")[1]
    assert new_version != before["model_version"]
    published = time.monotonic()
    seen_new = 0
    while seen_new < 10 and time.monotonic() - published < 60:
        # a fresh connection per request, so both workers answer
        row = httpx.post(f"{api.url}/predict", json={"customer_ids": ids}, headers=api.headers).json()[0]
        seen_new = seen_new + 1 if row["model_version"] == new_version else 0
        time.sleep(0.05)
    assert seen_new == 10, f"still serving {row['model_version']} 60 s after publishing {new_version}"
    assert same_answers([row], [before], version=False)  # the same model, republished


def test_an_api_started_before_any_model_serves_the_first_one_published(clean_shop, tmp_path):
    """`make up` order does not matter: with an empty store the API is alive but not ready and says why; the first
    published version makes it ready without a restart."""
    empty = tmp_path / "bentoml"
    empty.mkdir()
    with running_api("serving.service:ClvService", empty, tmp_path / "server.log", ready_path="/livez",
                     env={"CLV_API_WORKERS": "1", "CLV_REFRESH_SECONDS": "1"}) as api:
        assert httpx.get(f"{api.url}/readyz").status_code == 503
        for route, body in [("/predict", {"customer_ids": ["C0000000"]}), ("/predict_features", _features())]:
            response = api.post(route, body)
            assert response.status_code == 503 and "model version" in response.json()["error"], response.text
        tag = publish_copy(Path(os.environ["BENTOML_HOME"]), into=empty)
        deadline = time.monotonic() + 60
        while httpx.get(f"{api.url}/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        answer = api.post("/predict", {"customer_ids": ["C0000000"]})
        assert answer.status_code == 200 and answer.json()[0]["model_version"] == tag.split(":")[1]
