"""Which cutoffs a run computes features and labels at: the window plan, from the as-of date, the horizon and how
much history the shop has.

    score        t                          features only: what is predicted
    production   t - H, horizon H           the chosen recipe is retrained here (labels up to t)
    train:k      t - 2Hb - k s, horizon Hb  fold k of the backtest learns here ...
    eval:k       t - Hb - k s, horizon Hb   ... and is judged here, on a window it never saw
    calibration  52 weeks before the production cutoff (horizon H) and before eval:0 (horizon Hb), where the
                 shop already had customers: the season the scored horizon holds, seen a year earlier

A shop with 2H of history and more gets the backtest at the real horizon (Hb = H) on `folds` rolling origins, a
step s = Hb / 2 apart. A shorter history gets what fits: a shorter backtest horizon, fewer folds, and says so.
Anything with one horizon of history or more runs; less than that has no production window and is an error.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

YEAR = timedelta(days=364)  # 52 weeks: the same weekdays a year earlier
MIN_BACKTEST_HORIZON = 7


class PlanError(ValueError):
    """The shop's history cannot hold the windows; the message is one line."""


@dataclass(frozen=True)
class PlannedWindow:
    cutoff: date
    role: str  # score, production, train:k, eval:k, calibration:production, calibration:eval
    horizon_days: int


@dataclass
class WindowPlan:
    as_of: date
    horizon_days: int
    backtest_horizon_days: int
    folds: int
    windows: list[PlannedWindow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cutoff(self, role: str) -> PlannedWindow | None:
        return next((w for w in self.windows if w.role == role), None)

    def to_vars(self) -> list[list]:
        """The plan as the dbt var `windows`: [[cutoff_date, role, horizon_days], ...]."""
        return [[w.cutoff.isoformat(), w.role, w.horizon_days] for w in self.windows]

    def describe(self) -> dict:
        return {"backtest_horizon_days": self.backtest_horizon_days, "folds": self.folds,
                "windows": [{**asdict(w), "cutoff": w.cutoff.isoformat()} for w in self.windows],
                "notes": self.notes}


def plan_windows(as_of: date, horizon_days: int, first_order: date | None, folds: int = 3) -> WindowPlan:
    """The windows of one run. `first_order`: the date of the shop's first order (None: no orders at all)."""
    if first_order is None:
        raise PlanError("the shop has no orders before as_of: nothing to learn from")
    history = (as_of - first_order).days
    if history < horizon_days:
        raise PlanError(f"the shop has {history} days of history before {as_of}; it needs at least one horizon "
                        f"({horizon_days} days)")
    min_age = min(30, history // 5)  # the oldest training cutoff must already have customers
    usable = history - min_age
    notes: list[str] = []
    hb, k = _backtest_shape(usable, horizon_days, folds)
    if hb < MIN_BACKTEST_HORIZON:
        raise PlanError(f"the shop has {history} days of history before {as_of}: too short for any backtest")
    if hb < horizon_days:
        notes.append(f"{history} days of history hold no backtest at the {horizon_days}-day horizon: the models are "
                     f"judged on a {hb}-day horizon instead")
    if k < folds:
        notes.append(f"{k} backtest fold(s) instead of {folds}: the history holds no more")
    step = max(1, hb // 2)
    windows = [PlannedWindow(as_of, "score", horizon_days),
               PlannedWindow(as_of - timedelta(days=horizon_days), "production", horizon_days)]
    for i in range(k):
        windows.append(PlannedWindow(as_of - timedelta(days=hb + i * step), f"eval:{i}", hb))
        windows.append(PlannedWindow(as_of - timedelta(days=2 * hb + i * step), f"train:{i}", hb))
    for role, scored, h in (("calibration:production", as_of, horizon_days),
                            ("calibration:eval", as_of - timedelta(days=hb), hb)):
        cutoff = scored - YEAR
        if h <= YEAR.days and cutoff - timedelta(days=min_age) >= first_order:
            windows.append(PlannedWindow(cutoff, role, h))
        else:
            notes.append(f"no labelled window a year before {scored}: {role.split(':')[1]} is not calibrated "
                         "for the season")
    return WindowPlan(as_of, horizon_days, hb, k, windows, notes)


def _backtest_shape(usable: int, horizon_days: int, folds: int) -> tuple[int, int]:
    """(backtest horizon, folds): as many folds as fit with a horizon of at least a third of H (or H itself, when
    that fits); else one fold with the longest horizon that fits."""
    floor = max(MIN_BACKTEST_HORIZON, min(horizon_days, horizon_days // 3))
    for k in range(max(folds, 1), 0, -1):
        hb = min(horizon_days, int(usable / (2 + (k - 1) / 2)))
        if hb >= floor:
            return hb, k
    return min(horizon_days, usable // 2), 1


def cutoff_on_or_before(day: date, first: date, period_days: int) -> date | None:
    """The newest cutoff of the calendar `first, first + period, ...` that is not after `day` (None before `first`)."""
    if day < first:
        return None
    return first + timedelta(days=(day - first).days // period_days * period_days)


def latest_cutoff(last_order_day: date | None, first: date, period_days: int) -> date:
    """`as_of: latest`: the newest cutoff whose period the data covers, i.e. on or before the last order's day."""
    if last_order_day is None:
        raise PlanError("as_of is 'latest' but the shop has no orders yet: ingest its exports first")
    cutoff = cutoff_on_or_before(last_order_day, first, period_days)
    if cutoff is None:
        raise PlanError(f"the newest order ({last_order_day}) is before the first cutoff ({first}): "
                        "set cutoffs.first in clv.yaml")
    return cutoff


def matured_cutoff(as_of: date, horizon_days: int, first: date, period_days: int) -> date | None:
    """The cutoff whose scores have matured by `as_of`: the newest one at least one horizon earlier."""
    return cutoff_on_or_before(as_of - timedelta(days=horizon_days), first, period_days)
