"""Monitoring decisions: graded checks and the once-per-episode retraining rule."""
from __future__ import annotations

from datetime import datetime

import dagster as dg

from orchestration.assets.monitoring import graded_checks
from orchestration.sensors.drift import MonitorCursor, Signal, decide


def sig(kind, storage_id, value, threshold=0.25, as_of="2025-12-31"):
    return Signal(kind, storage_id, value, threshold, as_of)


def test_fires_once_per_episode_and_rearms_when_the_signal_falls():
    cursor = MonitorCursor()
    fire, notes, cursor = decide([sig("drift", 1, 0.1)], cursor)
    assert fire == [] and "below threshold" in notes[0]
    fire, _, cursor = decide([sig("drift", 2, 0.4)], cursor)
    assert [s.storage_id for s in fire] == [2]
    # the retraining run re-measures the same data: still drifted, same episode, no second run
    fire, notes, cursor = decide([sig("drift", 3, 0.41)], cursor)
    assert fire == [] and "already retrained" in notes[0]
    fire, _, cursor = decide([sig("drift", 4, 0.05), sig("drift", 5, 0.5)], cursor)
    assert [s.storage_id for s in fire] == [5]
    assert cursor.last_storage_id == 5


def test_drift_and_decay_are_separate_episodes():
    fire, _, cursor = decide([sig("drift", 1, 0.4), sig("decay", 2, 0.2, threshold=0.1)], MonitorCursor())
    assert [s.kind for s in fire] == ["drift", "decay"]
    fire, notes, _ = decide([sig("decay", 3, None, threshold=0.1)], cursor)
    assert fire == [] and "not measured yet" in notes[0]


def test_a_backfill_of_earlier_cutoffs_retrains_nothing():
    fire, _, cursor = decide([sig("drift", 1, 0.1, as_of="2025-12-31")], MonitorCursor())
    fire, notes, cursor = decide([sig("drift", 2, 0.6, as_of="2025-10-01")], cursor)
    assert fire == [] and "a backfill" in notes[0] and cursor.newest_as_of == "2025-12-31"
    fire, _, _ = decide([sig("drift", 3, 0.6, as_of="2026-01-07")], cursor)
    assert [s.storage_id for s in fire] == [3]


def test_cursor_round_trips():
    cursor = MonitorCursor(7, {"drift": True}, "2025-12-31")
    assert MonitorCursor.loads(cursor.dumps()) == cursor
    assert MonitorCursor.loads(None) == MonitorCursor()


def test_graded_checks_warn_early_and_error_at_the_threshold():
    calm, warn, error = (graded_checks(v, 0.3, ["w", "e"], "drift_share") for v in (0.1, 0.25, 0.35))
    assert [c.passed for c in calm] == [True, True]
    assert [c.passed for c in warn] == [False, True] and warn[0].severity == dg.AssetCheckSeverity.WARN
    assert [c.passed for c in error] == [False, False] and error[1].severity == dg.AssetCheckSeverity.ERROR
    # unmeasured is not a pass: both checks fail at WARN and say why
    unmeasured = graded_checks(None, 0.3, ["w", "e"], "gini_decay", "no scores yet")
    assert not any(c.passed for c in unmeasured)
    assert all(c.severity == dg.AssetCheckSeverity.WARN and c.metadata["measured"].value is False for c in unmeasured)
    assert "no scores yet" in unmeasured[0].metadata["note"].value


def test_jobs_split_rescoring_from_retraining():
    from orchestration.definitions import defs

    def keys(job_name):
        job = defs.resolve_job_def(job_name)
        return {k.to_user_string() for k in job.asset_layer.selected_asset_keys}

    rescore, retrain = keys("rescore"), keys("retrain")
    training = {"backtest_model", "model_evaluation", "clv_model"}
    assert not training & rescore and training <= retrain
    for shared in ("customer_scores", "feature_drift_report", "model_performance", "served_model"):
        assert shared in rescore and shared in retrain
    assert "shop/orders" in rescore and "shop/orders" not in retrain
    assert keys("ingest") == {"shop_exports", "shop/orders", "shop/customers", "shop/events"}


def test_schedules_request_the_newest_cutoff_of_their_jobs():
    from orchestration.definitions import defs
    from orchestration.schedules import daily_rescore, weekly_retrain

    with dg.instance_for_test() as instance:
        for schedule, job in ((daily_rescore, "rescore"), (weekly_retrain, "retrain")):
            context = dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime(2026, 1, 5, 3),
                                                repository_def=defs.get_repository_def())
            request = list(schedule.evaluate_tick(context).run_requests)[0]
            # the test shop is simulated up to 2025-12-31, a cutoff of its weekly calendar
            assert schedule.job_name == job and request.tags["clv/trigger"] == "schedule"
            assert request.partition_key == "2025-12-31"
