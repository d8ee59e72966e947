"""The modelling steps, as plain functions that the Dagster assets and `clv predict` both call.

    windows (from the warehouse) -> backtest (zoo at t - 2H, calibrated on the year before t - H)
    -> leaderboard on (t - H, t] -> the best servable recipe retrained at t - H (calibrated on the year before t)
    -> scores at t (+ reasons)
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, fields
from pathlib import Path

import duckdb
import pandas as pd

from ml.calibration import calibrate, year_ago_cutoff
from ml.explain import explain
from ml.leaderboard import leaderboard
from ml.model import ClvModel
from ml.settings import TrainingConfig
from ml.windows import Window, cutoffs, load_window, read_window, save_window
from ml.zoo import BASELINES, ZooResult, fit_zoo
from ml.zoo.deep import DeepModel
from ml.zoo.ensemble import StackedEnsemble


@dataclass
class Windows:
    train: Window  # features at t - 2H, labels (t - 2H, t - H]
    holdout: Window  # features at t - H, labels (t - H, t]
    score: Window  # features at t, no labels
    year_ago_holdout: Window | None = None  # labelled, about a year before the holdout: calibrates the backtest
    year_ago_score: Window | None = None  # labelled, about a year before t: calibrates the production model

    def roles(self) -> dict[str, Window | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load_windows(con: duckdb.DuckDBPyConnection, n_weeks: int, horizon_days: int) -> Windows:
    """The run's windows from the warehouse's cutoffs (dbt `cutoffs`: score, holdout, train...)."""
    roles = cutoffs(con)
    for role in ("score", "holdout", "train"):
        if not roles.get(role):
            raise ValueError(f"the warehouse has no '{role}' cutoff: not enough history before as_of")
    train_cutoffs = roles["train"]
    ya_holdout = year_ago_cutoff(roles["holdout"][-1], train_cutoffs, horizon_days)
    ya_score = year_ago_cutoff(roles["score"][-1], train_cutoffs + roles["holdout"], horizon_days)
    load = lambda c: load_window(con, c, n_weeks) if c else None  # noqa: E731
    return Windows(load(train_cutoffs[-1]), load(roles["holdout"][-1]), load(roles["score"][-1]),
                   load(ya_holdout), load(ya_score))


def save_windows(windows: Windows, folder: Path) -> None:
    for role, window in windows.roles().items():
        if window is None:
            shutil.rmtree(folder / role, ignore_errors=True)  # a stale window of an earlier run must not be used
        else:
            save_window(window, folder / role)


def read_windows(folder: Path) -> Windows:
    return Windows(**{role: read_window(folder / role) if (folder / role).exists() else None
                      for role in Windows.__dataclass_fields__})


def fit_backtest(windows: Windows, horizon_days: int, training: TrainingConfig, progress=None) -> ZooResult:
    """The zoo trained at t - 2H; every model but the baselines calibrated on the year before the holdout."""
    result = fit_zoo(windows.train, horizon_days, training, progress=progress)
    for name, model in result.models.items():
        if name not in BASELINES:
            calibrate(model, windows.year_ago_holdout)
    return result


def evaluate_backtest(models: dict[str, ClvModel], holdout: Window, oracle: pd.DataFrame | None = None,
                      facts: dict[str, dict] | None = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(leaderboard, predictions per model) on the holdout: features at t - H, actual value in (t - H, t]."""
    predictions = {name: m.predict(holdout.features, holdout.sequences) for name, m in models.items()}
    facts = {name: {"calibration": round(float(m.info.get("calibration", 1.0)), 4), **(facts or {}).get(name, {})}
             for name, m in models.items()}
    return leaderboard(holdout.y, predictions, oracle, facts), predictions


def deep_recipe(model: ClvModel):
    """The TrainConfig of the ZILN network inside a model (itself or an ensemble member), else None."""
    from ml.search import chosen_config

    if isinstance(model, DeepModel) and model.net.cfg.head == "ziln":
        return chosen_config(model)
    if isinstance(model, StackedEnsemble):
        return next((deep_recipe(m) for m in model.members.values() if deep_recipe(m) is not None), None)
    return None


def fit_production(backtest_model: ClvModel, windows: Windows, horizon_days: int, training: TrainingConfig,
                   progress=None) -> ClvModel:
    """The backtest's recipe (same zoo member, same hyperparameters) trained at t - H, calibrated on the year
    before t. A baseline that wins is calibrated too: in production the total matters whoever predicts it."""
    name = backtest_model.name
    result = fit_zoo(windows.holdout, horizon_days, training, names=[name], deep_config=deep_recipe(backtest_model),
                     progress=progress)
    if name not in result.models:
        raise RuntimeError(f"{name} could not be trained at {windows.holdout.cutoff}: {result.failures.get(name)}")
    model = result.models[name]
    calibrate(model, windows.year_ago_score)
    model.info["train_seconds_total"] = sum(result.seconds.values())
    return model


def score_frame(model: ClvModel, window: Window, top_k: int = 3, with_reasons: bool = True) -> pd.DataFrame:
    """Every customer of the window: predictions, lifecycle stage and (optionally) the top reasons in words."""
    pred = model.predict(window.features, window.sequences)
    frame = pd.concat([
        pd.DataFrame({"customer_id": window.customer_ids, "cutoff_date": window.features["cutoff_date"].to_numpy()}),
        pred, pd.DataFrame({"lifecycle_stage": window.lifecycle.to_numpy()}),
    ], axis=1)
    if with_reasons:
        reasons = explain(model, window.features, window.sequences, top_k) if len(window) else []
        frame["reasons"] = ["; ".join(r.text for r in row) for row in reasons]
    return frame
