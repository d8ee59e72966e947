"""The window plan: which cutoffs a run learns, is judged and is calibrated at, for long and short histories."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from ml.data.plan import PlanError, plan_windows


def roles(plan) -> dict[str, tuple[date, int]]:
    return {w.role: (w.cutoff, w.horizon_days) for w in plan.windows}


def test_two_years_of_history_get_three_folds_at_the_full_horizon_and_calibration():
    t = date(2025, 12, 31)
    plan = plan_windows(t, 90, date(2024, 1, 1), folds=3)
    r = roles(plan)
    assert (plan.backtest_horizon_days, plan.folds, plan.notes) == (90, 3, [])
    assert r["score"] == (t, 90) and r["production"] == (date(2025, 10, 2), 90)
    assert r["eval:0"] == (date(2025, 10, 2), 90) and r["train:0"] == (date(2025, 7, 4), 90)
    # rolling origins half a horizon apart; each fold judged on the window after its own training cutoff
    assert [r[f"eval:{k}"][0] for k in range(3)] == [date(2025, 10, 2), date(2025, 8, 18), date(2025, 7, 4)]
    for k in range(3):
        assert r[f"eval:{k}"][0] - r[f"train:{k}"][0] == timedelta(days=90)
    # 52 weeks back, with labels that matured before the cutoff they calibrate
    assert r["calibration:production"] == (t - timedelta(days=364), 90)
    assert r["calibration:eval"][0] + timedelta(days=90) <= r["eval:0"][0]


def test_one_year_of_history_backtests_on_a_shorter_horizon_and_says_so():
    """CDNOW's shape: 364 days before as-of, a 181-day horizon, one acquisition cohort in the first quarter."""
    plan = plan_windows(date(1997, 12, 31), 181, date(1997, 1, 1), folds=3)
    r = roles(plan)
    assert plan.backtest_horizon_days < 181 and plan.folds == 3
    assert r["production"] == (date(1997, 7, 3), 181)  # production keeps the real horizon
    oldest = min(r[f"train:{k}"][0] for k in range(plan.folds))
    assert oldest >= date(1997, 1, 31)  # every training cutoff already has customers
    assert max(r[f"eval:{k}"][0] for k in range(3)) + timedelta(days=plan.backtest_horizon_days) <= date(1997, 12, 31)
    assert "calibration:production" not in r and "calibration:eval" not in r
    assert any("111-day horizon" in n for n in plan.notes) and any("not calibrated" in n for n in plan.notes)


def test_one_horizon_of_history_is_enough_and_less_is_one_clear_line():
    plan = plan_windows(date(2025, 12, 31), 90, date(2025, 10, 1), folds=3)
    assert plan.folds == 1 and 7 <= plan.backtest_horizon_days < 90 and any("1 backtest fold" in n for n in plan.notes)
    with pytest.raises(PlanError, match="it needs at least one horizon"):
        plan_windows(date(2025, 12, 31), 90, date(2025, 11, 1))
    with pytest.raises(PlanError, match="no orders"):
        plan_windows(date(2025, 12, 31), 90, None)


def test_latest_cutoff_is_the_newest_calendar_date_the_data_covers():
    from ml.data.plan import cutoff_on_or_before, latest_cutoff, matured_cutoff

    first = date(2025, 1, 1)  # a Wednesday: weekly cutoffs fall on Wednesdays
    assert latest_cutoff(date(2025, 12, 31), first, 7) == date(2025, 12, 31)
    assert latest_cutoff(date(2025, 12, 30), first, 7) == date(2025, 12, 24)  # the week to 12-31 is not complete
    assert latest_cutoff(date(2025, 12, 30), first, 1) == date(2025, 12, 30)
    assert cutoff_on_or_before(date(2024, 12, 31), first, 7) is None
    # the scores judged at 2025-12-31 with H = 90: the newest cutoff on or before 2025-10-02
    assert matured_cutoff(date(2025, 12, 31), 90, first, 7) == date(2025, 10, 1)
    with pytest.raises(PlanError, match="no orders yet"):
        latest_cutoff(None, first, 7)
    with pytest.raises(PlanError, match="before the first cutoff"):
        latest_cutoff(date(2024, 6, 1), first, 7)


def test_the_cutoff_calendar_is_validated():
    from ml.settings import CutoffsConfig

    with pytest.raises(ValueError, match="cutoffs.every is 'monthly'"):
        CutoffsConfig(every="monthly")
    assert CutoffsConfig(every="daily", first="2025-03-04").period_days == 1


def test_an_as_of_off_the_calendar_is_one_line_naming_a_cutoff():
    from ml.settings import CutoffsConfig, PlatformConfig
    from orchestration.partitions import newest_cutoff

    cfg = PlatformConfig(as_of="2025-12-30", cutoffs=CutoffsConfig(first="2025-01-01"))
    with pytest.raises(PlanError, match="not a cutoff of the calendar .* such as 2025-12-24"):
        newest_cutoff(cfg, None)
    assert newest_cutoff(PlatformConfig(as_of="2025-12-31"), None) == "2025-12-31"
