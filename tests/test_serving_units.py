"""The serving parts that need no server: lifecycle rules vs dbt, the request schema vs the mart and its domain, the
timeout fix, feature rows -> model inputs, the one-run batch vs the batch path, error lines, the bento's pins."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from ml.models.interface import PREDICTION_COLUMNS
from ml.models.zoo.btyd import FEATURES as DERIVED
from ml.data.windows import CATEGORICAL, KEY, SEQUENCE_CHANNELS
from serving import batch, features, gate, lifecycle, runtime
from serving.schemas import (NUMERIC_FEATURES, SIGNED_FEATURES, CustomerFeatures, FeaturesRequest,
                             expect_sequence_weeks)
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


def _rows(snapshot, positions) -> list[CustomerFeatures]:
    """Snapshot customers as validated request rows."""
    expect_sequence_weeks(snapshot.sequences.shape[1])
    out = []
    for i in positions:
        row = snapshot.features.iloc[i]
        values = {c: (None if pd.isna(row[c]) else float(row[c])) for c in NUMERIC_FEATURES}
        values.update({c: (None if pd.isna(row[c]) else str(row[c])) for c in CATEGORICAL})
        out.append(CustomerFeatures(customer_id=str(row["customer_id"]), weekly_activity=snapshot.sequences[i].tolist(),
                                    **values))
    return out


def test_every_customer_of_the_mart_is_inside_the_request_domain(served):
    """The domain checks reject what the mart cannot produce, never a customer it did."""
    rows = _rows(served.snapshot, range(len(served.snapshot)))
    assert len(rows) == len(served.snapshot)


def test_features_outside_their_domain_are_rejected_naming_the_row_and_field():
    valid = {"n_orders": 1, "total_spend": 10.0, "tenure_days": 5}
    for field, value in [("n_orders", -5), ("tenure_days", -10), ("avg_order_value", -1.0), ("recency_days", -1),
                         ("orders_30d", -2), ("btyd_age_days", -3), ("views_total", -1), ("weekend_order_share", 1.5),
                         ("order_hour_mean", 24.0)]:
        with pytest.raises(ValidationError) as raised:
            FeaturesRequest.model_validate({"rows": [valid, {**valid, field: value}]})
        errors = raised.value.errors()
        assert [e["loc"] for e in errors] == [("rows", 1, field)], field
    # net spend and repeat-day spend net refunds: negative values are customers' histories
    negative = {c: -3.5 for c in SIGNED_FEATURES}
    assert FeaturesRequest.model_validate({"rows": [{**valid, **negative}]}).rows[0].btyd_monetary == -3.5
    assert set(SIGNED_FEATURES) <= set(NUMERIC_FEATURES)
    schema = CustomerFeatures.model_json_schema()["properties"]
    assert schema["n_orders"]["minimum"] == 0 and schema["total_spend"]["minimum"] < 0


@pytest.fixture(scope="module", params=["served", "ensemble"])
def model(request, clean_shop, served):
    """The served model, and the stacked ensemble the backtest trained (the champion of bigger shops)."""
    if request.param == "served":
        return served.model
    from ml.models.zoo import load_model

    found = sorted(Path(clean_shop[0]).glob("**/backtest/**/ensemble/model.json"))
    if not found:
        pytest.skip("the backtest trained no ensemble")
    return load_model(found[-1].parent)


def test_one_model_run_gives_the_batch_paths_answers(served, model):
    """Predictions as the batch path scores the snapshot (customer_scores), reasons as `explain` gives them; rows
    that do not ask for reasons get none."""
    from ml.evaluation.explain import explain
    from ml.pipeline import score_frame
    from serving.store import single_threaded_torch

    snapshot = served.snapshot
    positions = [0, 3, 11, 42, 250, 3, len(snapshot) - 1]
    rows = _rows(snapshot, positions)
    frame, sequences = features.frame(rows), features.sequences(rows, snapshot.sequences.shape[1])
    asked = np.array([0, 1, 3, 4, 5, 6])
    with single_threaded_torch():
        predictions, reasons = batch.predict(model, frame, sequences, asked, top_k=3)
        scored = score_frame(model, snapshot, with_reasons=False).iloc[positions].reset_index(drop=True)
        explained = [positions[i] for i in asked]
        want = explain(model, snapshot.features.iloc[explained], snapshot.sequences[explained], top_k=3)
    for col in predictions.columns:
        np.testing.assert_allclose(predictions[col], scored[col], rtol=1e-6, atol=1e-9, err_msg=col)
    assert reasons[2] is None
    for i, expected in zip(asked, want):
        assert [(r["feature"], r["value"], r["text"]) for r in reasons[i]] == [(r.feature, r.value, r.text)
                                                                              for r in expected]
        assert [r["effect"] for r in reasons[i]] == pytest.approx([r.effect for r in expected], rel=1e-6, abs=1e-9)


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


def test_a_batch_thread_runs_the_model_on_one_thread():
    """OpenMP's thread count is per thread: the limit is set in the thread that runs the batch."""
    import threading

    from threadpoolctl import threadpool_info

    import ml.models.zoo  # noqa: F401  (loads scikit-learn's and torch's OpenMP)

    seen = {}

    def batch_thread():
        runtime.single_threaded_here()
        seen["threads"] = {(i["internal_api"], i["filepath"]): i["num_threads"] for i in threadpool_info()}

    thread = threading.Thread(target=batch_thread)
    thread.start()
    thread.join()
    assert seen["threads"] and set(seen["threads"].values()) == {1}


def test_the_bento_requirements_are_the_locked_pins():
    listed = [line for line in (REPO / "serving" / "requirements.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    assert listed == serving_requirements(), "python -m tests.serving_api requirements > serving/requirements.txt"
    assert any(line.startswith("bentoml==") for line in listed) and any(line.startswith("torch==") for line in listed)


def test_a_rebuilt_snapshot_with_float_noise_is_the_same_snapshot_and_a_changed_value_is_not():
    from datetime import date

    import numpy as np
    import pandas as pd

    from ml.data.windows import Window
    from serving.store import same_snapshot

    def window(values, cutoff=date(2025, 12, 31)):
        features = pd.DataFrame({"customer_id": ["C1", "C2"], "avg_order_value": values, "n_orders": [1, 2]})
        return Window(cutoff, features, np.zeros((2, 4, 3), dtype=np.float32), pd.Series(["new", "active"]), None)

    served = window([10.0078125, np.nan])  # 1/128 steps sit on a decimal rounding boundary
    assert same_snapshot(served, window([10.0078125 + 1e-13, np.nan]))  # DuckDB's parallel sums, rebuilt
    assert not same_snapshot(served, window([11.0, np.nan]))
    assert not same_snapshot(served, window([10.0078125, np.nan], cutoff=date(2025, 12, 24)))


def test_customer_scores_answers_are_published_only_when_they_are_this_models_on_this_snapshot(served):
    """served_model reuses the customer_scores frame: its reasons JSON spliced into each answer gives the bytes of
    the whole answer encoded at once; a frame of another model, other customers or stale features is not used."""
    from ml.pipeline import score_frame
    from serving import scores
    from serving.store import agrees, scored_by, single_threaded_torch

    model, snapshot = served.model, served.snapshot
    model_id = str(model.info["model_id"])
    with single_threaded_torch():
        scored = score_frame(model, snapshot).assign(model_version=model_id)
    answers = scores.answers_of(scored)
    built = scores.Answers.build(answers, "v")
    values = answers[PREDICTION_COLUMNS].to_dict(orient="records")
    for cid, vals, stage, reasons, words in zip(answers["customer_id"], values, answers["lifecycle_stage"],
                                                answers["reasons"], scored["reasons"]):
        parsed = json.loads(reasons)
        # the stored reasons spliced into the answer: the bytes of encoding the whole answer at once
        assert built.with_reasons[cid] == scores._json(scores.row(cid, vals, stage, "v", parsed))
        assert built.without_reasons[cid] == scores._json(scores.row(cid, vals, stage, "v", None))
        assert "; ".join(r["text"] for r in parsed) == words and len(parsed) == 3
        assert {"feature", "value", "effect", "text"} == set(parsed[0])

    assert scored_by(scored, model_id, snapshot) and agrees(model, snapshot, scored)
    assert not scored_by(scored, model_id + "x", snapshot)  # another model's
    assert not scored_by(scored.iloc[::-1].reset_index(drop=True), model_id, snapshot)  # not in snapshot order
    assert not scored_by(scored.drop(columns="reason_details"), model_id, snapshot)  # scored without reasons
    stale = scored.assign(predicted_value=scored["predicted_value"] * 1.01 + 0.01)
    assert not agrees(model, snapshot, stale)  # the same customers scored on other features
