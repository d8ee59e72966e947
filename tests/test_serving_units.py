"""The serving parts that need no server: lifecycle rules vs dbt, the request schema vs the mart, the timeout fix,
feature rows -> model inputs, error lines, the bento's pins."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ml.zoo.btyd import FEATURES as DERIVED
from ml.windows import CATEGORICAL, KEY, SEQUENCE_CHANNELS
from serving import features, gate, lifecycle, runtime
from serving.schemas import NUMERIC_FEATURES, CustomerFeatures, expect_sequence_weeks
from tests.serving_api import REPO, serving_requirements


@pytest.fixture(scope="module")
def served(clean_shop):
    from serving import store

    return store.load()


def test_lifecycle_rules_give_dbts_stage_for_every_customer(served):
    stages = lifecycle.stages(served.snapshot.features)
    assert (stages == served.snapshot.lifecycle.to_numpy()).all()
    assert len(set(stages)) >= 4  # the comparison covers several rules, not one default


def test_the_request_schema_has_every_feature_of_the_mart(served):
    mart = [c for c in served.snapshot.features.columns if c not in KEY]
    assert sorted(mart) == sorted(NUMERIC_FEATURES + CATEGORICAL)
    # what the model reads is the mart's columns, or derived from them by the model itself (BTYD's outputs)
    assert set(served.model.prep.numeric) - set(DERIVED) <= set(NUMERIC_FEATURES)


def test_feature_rows_become_model_inputs():
    expect_sequence_weeks(4)
    weeks = [[1, 2, 3, 4, 5, 6], [0] * 6, [0] * 6, [2, 20, 0, 1, 0, 0]]
    rows = [CustomerFeatures(n_orders=3, total_spend=90.0, tenure_days=100, region="europe", weekly_activity=weeks),
            CustomerFeatures(n_orders=0, total_spend=0.0, tenure_days=3)]
    frame = features.frame(rows)
    assert frame.loc[0, "n_orders"] == 3 and np.isnan(frame.loc[1, "recency_days"])
    assert frame.loc[0, "region"] == "europe" and frame["device"].isna().all()
    seq = features.sequences(rows, 4)
    assert seq.shape == (2, 4, len(SEQUENCE_CHANNELS))
    assert seq[0, -1, 1] == 20 and seq[0, 0, 0] == 1 and not seq[1].any()
    with pytest.raises(ValueError, match="reads 4 weeks"):
        CustomerFeatures(n_orders=1, total_spend=1.0, tenure_days=1, weekly_activity=weeks[:3])


def test_validation_errors_become_one_line_naming_the_place():
    body = (b'{"error": "2 validation errors for Input", "detail": [{"type": "float_type", "loc": ["rows", 3, '
            b'"n_orders"], "msg": "Input should be a valid number"}, {"type": "missing", "loc": ["rows", 3, '
            b'"tenure_days"], "msg": "Field required"}]}')
    error, detail = gate._one_line(body)
    assert error == "rows[3].n_orders: Input should be a valid number (and 1 more)"
    assert detail.endswith("rows[3].tenure_days: Field required")
    assert gate._one_line(b'[{"error": "unknown customer"}]') == ("unknown customer", None)


def _pending_timers_after(middleware_cls, requests: int) -> int:
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def noop(message):
        pass

    async def run() -> int:
        middleware = middleware_cls(app, timeout=60)
        for _ in range(requests):
            await middleware({"type": "http"}, None, noop)
        loop = asyncio.get_running_loop()
        return sum(1 for handle in loop._scheduled if not handle.cancelled())

    return asyncio.run(run())


def test_the_timeout_middleware_leaves_no_timer_behind():
    """BentoML's keeps one live timer (and the request's objects) per request for `timeout` seconds; ours none."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware as Original

    if Original is runtime.TimeoutMiddleware:
        pytest.skip("installed in this process")
    assert _pending_timers_after(Original, 200) >= 200
    assert _pending_timers_after(runtime.TimeoutMiddleware, 200) == 0


def test_the_timeout_middleware_still_times_out():
    async def slow(scope, receive, send):
        await asyncio.sleep(5)

    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(runtime.TimeoutMiddleware(slow, timeout=0.05)({"type": "http"}, None, send))
    assert sent[0]["status"] == 504


def test_the_bento_requirements_are_the_locked_pins():
    listed = [line for line in (REPO / "serving" / "requirements.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    assert listed == serving_requirements(), "python -m tests.serving_api requirements > serving/requirements.txt"
    assert any(line.startswith("bentoml==") for line in listed) and any(line.startswith("torch==") for line in listed)
