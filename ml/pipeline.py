"""The modelling steps, as plain functions that the Dagster assets and `clv predict` both call.

    windows (the run's plan, ml/data/plan.py) -> backtest: the zoo trained on each fold's train cutoff, judged out of
    time on its eval cutoff -> the choice on the mean normalized Gini over the folds -> the chosen recipe retrained
    at t - H (calibrated on the year before t); if it fails to train there, the next best servable one
    -> scores at t (+ reasons)
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ml.models.calibration import calibrate
from ml.evaluation.explain import explain, reasons_json
from ml.evaluation.leaderboard import leaderboard, ranked
from ml.models.interface import ClvModel, shared_predictions
from ml.settings import TrainingConfig
from ml.data.windows import Window, load_window, planned_cutoffs, read_window, save_window
from ml.models.zoo import BASELINES, DEFAULT_MODELS, STREAM_READERS, TREE_BASED, ZooResult, fit_zoo
from ml.models.zoo.btyd import btyd_total, total_anchor
from ml.models.zoo.deep import reused_encodings


@dataclass
class Fold:
    train: Window  # features at the fold's train cutoff, labels over the backtest horizon
    eval: Window  # features one backtest horizon later, labels over the next one: never seen by the fold


@dataclass
class Windows:
    score: Window  # features at t, no labels
    production: Window  # features at t - H, labels (t - H, t]: the chosen recipe learns here
    folds: list[Fold]  # fold 0 is the latest
    calibration_production: Window | None = None  # labelled, a year before t: calibrates the production model
    calibration_eval: Window | None = None  # labelled, a year before fold 0's eval cutoff: calibrates the backtest
    plan: dict = field(default_factory=dict)  # backtest_horizon_days, folds, notes (ml.data.plan.WindowPlan.describe)

    @property
    def holdout(self) -> Window:
        return self.folds[0].eval

    @property
    def train(self) -> Window:
        return self.folds[0].train

    @property
    def backtest_horizon_days(self) -> int:
        return int(self.holdout.horizon_days)

    def roles(self) -> dict[str, Window | None]:
        out = {"score": self.score, "production": self.production}
        for k, fold in enumerate(self.folds):
            out[f"train_{k}"], out[f"eval_{k}"] = fold.train, fold.eval
        out["calibration_production"] = self.calibration_production
        out["calibration_eval"] = self.calibration_eval
        return out


def load_windows(con: duckdb.DuckDBPyConnection, n_weeks: int, plan: dict | None = None) -> Windows:
    """The run's windows from the warehouse's cutoffs (dbt `cutoffs`, from the window plan). A cutoff without
    the plan's roles (dbt run by hand) is read as one fold: train -> holdout, and production = holdout."""
    planned = planned_cutoffs(con)
    by_role = {role: (cutoff, h) for role, cutoff, h in planned}
    if "score" not in by_role:
        raise ValueError("the warehouse has no 'score' cutoff: run dbt with the window plan first")
    if "production" not in by_role:  # the plan-less layout: score, holdout, train...
        trains = [(c, h) for role, c, h in planned if role == "train"]
        if "holdout" not in by_role or not trains:
            raise ValueError("the warehouse has no 'holdout' cutoff: not enough history before as_of")
        by_role.update({"production": by_role["holdout"], "eval:0": by_role["holdout"], "train:0": trains[0]})
    cache: dict[tuple, Window] = {}

    def load(role: str) -> Window | None:
        if role not in by_role:
            return None
        key = by_role[role]
        if key not in cache:
            cache[key] = load_window(con, key[0], n_weeks, key[1] if role != "score" else None)
        return cache[key]

    folds = [Fold(load(f"train:{k}"), load(f"eval:{k}")) for k in range(len(by_role))
             if f"train:{k}" in by_role and f"eval:{k}" in by_role]
    return Windows(load("score"), load("production"), folds, load("calibration:production"),
                   load("calibration:eval"), plan or {})


def save_windows(windows: Windows, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    roles = windows.roles()
    for stale in folder.iterdir():  # a window of an earlier run that this plan has not must not be used
        if stale.is_dir() and roles.get(stale.name) is None:
            shutil.rmtree(stale, ignore_errors=True)
    for role, window in roles.items():
        if window is not None:
            save_window(window, folder / role)
    (folder / "plan.json").write_text(json.dumps({**windows.plan, "n_folds": len(windows.folds)}, indent=1))


def read_windows(folder: Path) -> Windows:
    plan = json.loads((folder / "plan.json").read_text())
    get = lambda role: read_window(folder / role) if (folder / role).exists() else None  # noqa: E731
    folds = [Fold(get(f"train_{k}"), get(f"eval_{k}")) for k in range(plan["n_folds"])]
    return Windows(get("score"), get("production"), folds, get("calibration_production"), get("calibration_eval"),
                   {k: v for k, v in plan.items() if k != "n_folds"})


@dataclass
class Backtest:
    folds: list[ZooResult]  # fold 0's models are the backtest models (saved, shown, compared with the champion)
    notes: list[str] = field(default_factory=list)

    @property
    def models(self) -> dict[str, ClvModel]:
        return self.folds[0].models


def fit_backtest(windows: Windows, training: TrainingConfig, progress=None) -> Backtest:
    """The zoo trained on every fold. Fold 0 searches the deep model's hyperparameters and is calibrated on the
    year before its eval cutoff; the older folds retrain the same recipes and only rank (Gini ignores scale)."""
    say = progress or (lambda msg: None)
    horizon = windows.backtest_horizon_days
    say(f"fold 0: train at {windows.train.cutoff}, judged on ({windows.holdout.cutoff}, +{horizon} days]")
    first = fit_zoo(windows.train, horizon, training, progress=progress)
    anchor = btyd_total(windows.holdout, horizon) if windows.calibration_eval is None else None
    with shared_predictions():  # the ensemble reuses its members' predictions (the calibration scales outputs only)
        for name, model in first.models.items():
            if name not in BASELINES:
                calibrate_total(model, windows.calibration_eval, windows.holdout, horizon, anchor)
    result = Backtest([first])
    recipe = first.models["deep_ziln"].recipe() if "deep_ziln" in first.models else None
    for k, fold in enumerate(windows.folds[1:], start=1):
        say(f"fold {k}: train at {fold.train.cutoff}, judged on ({fold.eval.cutoff}, +{horizon} days]")
        try:
            result.folds.append(fit_zoo(fold.train, horizon, training, names=list(first.models),
                                        deep_config=recipe, progress=progress))
        except ValueError as exc:  # too few customers that far back: the other folds still count
            result.notes.append(f"fold {k} left out: {exc}")
            say(result.notes[-1])
    return result


def evaluate_backtest(models: dict[str, ClvModel], holdout: Window, oracle: pd.DataFrame | None = None,
                      facts: dict[str, dict] | None = None, predictions: dict[str, pd.DataFrame] | None = None
                      ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(leaderboard, predictions per model) on the holdout: features at t - H, actual value in (t - H, t].
    `predictions`: the models' on this holdout, when they were made already (read_holdout_predictions)."""
    if predictions is None:
        with shared_predictions():  # the ensemble reuses its members' predictions
            predictions = {name: m.predict(holdout.features, holdout.sequences, holdout.events)
                           for name, m in models.items()}
    facts = {name: {"calibration": round(float(m.info.get("calibration", 1.0)), 4), **(facts or {}).get(name, {})}
             for name, m in models.items()}
    return leaderboard(holdout.y, predictions, oracle, facts), predictions


def judge_backtest(backtest: Backtest, windows: Windows, progress=None
                   ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.DataFrame]:
    """(fold 0's leaderboard on the holdout, its predictions per model, every fold's Gini: fold_ginis)."""
    result = backtest.folds[0]
    if progress:
        progress(f"fold 0: judging {len(result.models)} models on {len(windows.holdout):,} customers")
    first, predictions = evaluate_backtest(result.models, windows.holdout)
    return first, predictions, fold_ginis(backtest, windows, first, progress)


def fold_ginis(backtest: Backtest, windows: Windows, first: pd.DataFrame | None = None,
               progress=None) -> pd.DataFrame:
    """Normalized Gini of every model on every fold's eval window (model x fold), and their mean. `first`: fold 0's
    leaderboard when the caller has it already."""
    say = progress or (lambda msg: None)
    rows = {}
    for k, result in enumerate(backtest.folds):
        if k == 0 and first is not None:
            board = first
        else:
            eval_window = windows.folds[k].eval
            say(f"fold {k}: judging {len(result.models)} models on {len(eval_window):,} customers")
            board = evaluate_backtest(result.models, eval_window)[0]
        rows[f"gini_fold_{k}"] = dict(zip(board["model"], board["normalized_gini"]))
    table = pd.DataFrame(rows)
    table["mean_normalized_gini"] = table.mean(axis=1, skipna=False)
    return table.rename_axis("model").reset_index()


HOLDOUT_PREDICTIONS_FILE = "holdout_predictions.parquet"
JUDGED_COLUMNS = ["predicted_value", "p_return"]  # what a leaderboard reads of a prediction


def save_holdout_predictions(predictions: dict[str, pd.DataFrame], holdout: Window, folder: Path) -> None:
    """Fold 0's predictions on its holdout (the leaderboard's), kept so model_evaluation need not make them again."""
    pd.DataFrame({"customer_id": holdout.customer_ids,
                  **{f"{name}.{c}": p[c].to_numpy(dtype=float) for name, p in predictions.items()
                     for c in JUDGED_COLUMNS}}).to_parquet(folder / HOLDOUT_PREDICTIONS_FILE)


def read_holdout_predictions(folder: Path, names, holdout: Window) -> dict[str, pd.DataFrame] | None:
    """The kept predictions of `names` on `holdout`; None unless they are all there, for its customers in order."""
    path = folder / HOLDOUT_PREDICTIONS_FILE
    columns = ["customer_id", *[f"{n}.{c}" for n in names for c in JUDGED_COLUMNS]]
    if not path.exists() or not set(columns) <= set(pq.read_schema(path).names):
        return None
    table = pd.read_parquet(path, columns=columns)
    if not np.array_equal(table["customer_id"].to_numpy(dtype=object), holdout.customer_ids.astype(object)):
        return None
    return {n: pd.DataFrame({c: table[f"{n}.{c}"].to_numpy() for c in JUDGED_COLUMNS}) for n in names}


def with_fold_ginis(board: pd.DataFrame, ginis: pd.DataFrame | list[dict]) -> pd.DataFrame:
    """Fold 0's leaderboard with every fold's Gini beside it (a model missing a fold gets no mean)."""
    ginis = pd.DataFrame(ginis)
    return board.drop(columns=[c for c in ginis.columns if c != "model" and c in board]).merge(
        ginis, on="model", how="left")


def fit_production(backtest_model: ClvModel, windows: Windows, horizon_days: int, training: TrainingConfig,
                   progress=None) -> ClvModel:
    """The backtest's recipe (same zoo member, same hyperparameters) trained at t - H, calibrated on the year
    before t. A baseline that wins is calibrated too: in production the total matters whoever predicts it."""
    name = backtest_model.name
    result = fit_zoo(windows.production, horizon_days, training, names=[name],
                     deep_config=backtest_model.recipe(), progress=progress)
    if name not in result.models:
        raise RuntimeError(f"{name} could not be trained at {windows.production.cutoff}: {result.failures.get(name)}")
    model = result.models[name]
    calibrate_total(model, windows.calibration_production, windows.score, horizon_days)
    model.info["train_seconds_total"] = sum(result.seconds.values())
    return model


def calibrate_total(model: ClvModel, year_ago: Window | None, scored: Window, horizon_days: int,
                    anchor: tuple | None = None) -> float:
    """The season from the year-ago window where the shop has one (ml/models/calibration.py); else the total anchored to
    BG/NBD + Gamma-Gamma fitted at the scored cutoff, which sees the population age (ml/models/zoo/btyd.py). `anchor`:
    btyd_total of `scored`, when several models are anchored on the same window."""
    factor = calibrate(model, year_ago)
    if model.info.get("calibration_window") is None and len(scored):
        factor, note = total_anchor(model, scored, anchor or btyd_total(scored, horizon_days))
        model.info.update(calibration=factor, calibration_note=f"{model.info['calibration_note']}; {note}")
    return factor


def fit_champion(order: list[str], backtest_models: dict[str, ClvModel], windows: Windows, horizon_days: int,
                 training: TrainingConfig, progress=None) -> tuple[ClvModel, list[str]]:
    """The first recipe of `order` (best first) that trains at t - H; the notes say which gave way and why."""
    say = progress or (lambda msg: None)
    notes = []
    for name in order:
        try:
            return fit_production(backtest_models[name], windows, horizon_days, training, progress), notes
        except (RuntimeError, ValueError) as exc:
            notes.append(f"{name} gave way: {str(exc).splitlines()[0]}")
            say(notes[-1])
    raise RuntimeError("no servable model could be trained at t - H: " + "; ".join(notes))


SCORES_FILE = "customer_scores.parquet"
EXTRAPOLATION_SHARE = 0.25  # of the scored customers older than anyone the production model learns from


def beyond_training(windows: Windows) -> float:
    """The share of customers scored at t who have been customers longer than anyone in the production window:
    a model learns at t - H and scores a horizon later, and in a young shop or a single cohort everyone is older."""
    learned = windows.production.features["tenure_days"].astype(float)
    scored = windows.score.features["tenure_days"].astype(float)
    if learned.notna().sum() == 0 or scored.notna().sum() == 0:
        return 0.0
    return float((scored > learned.max()).mean())


def choose_order(board: pd.DataFrame, eligible, tolerance: float, beyond: float = 0.0) -> list[str]:
    """The servable models, best first: by mean normalized Gini over the folds (fold 0's when a model lacks
    folds), Gini ties within `tolerance` broken by the best-calibrated deciles. When `beyond` (beyond_training)
    passes EXTRAPOLATION_SHARE, the tree-based models come last: a tree is constant past the oldest customer it
    saw, so it can rank the older population but not say how its value falls with age."""
    by = "mean_normalized_gini" if "mean_normalized_gini" in board and board["mean_normalized_gini"].notna().any() \
        else "normalized_gini"
    order = ranked(board, eligible, tolerance, by=by)
    if beyond > EXTRAPOLATION_SHARE:
        order = [m for m in order if m not in TREE_BASED] + [m for m in order if m in TREE_BASED]
    return order


def event_stream_length(max_events: int, models: list[str] | None, champion_dir: Path | None = None) -> int:
    """How many recent events per customer dbt's customer_events keeps in this run: `max_events` when a member
    to train (`models`, None: the default zoo) or the champion that scores reads event streams, else 0. The
    streams are the heaviest dbt model (every event at every cutoff of the plan) and a window's largest array;
    a zoo without the transformer member does not pay for them."""
    champion = None
    if champion_dir is not None and (Path(champion_dir) / "model.json").exists():
        champion = json.loads((Path(champion_dir) / "model.json").read_text()).get("name")
    readers = set(STREAM_READERS) & ({*(models or DEFAULT_MODELS), champion} - {None})
    return max_events if readers else 0


def score_frame(model: ClvModel, window: Window, top_k: int = 3, with_reasons: bool = True) -> pd.DataFrame:
    """Every customer of the window: predictions, lifecycle stage and (optionally) the top reasons, in words
    (`reasons`) and as JSON (`reason_details`: group, the value shown, effect on the expected value, the words)."""
    with reused_encodings():  # the explanation's runs reuse this one's sequence encoding
        return _score_frame(model, window, top_k, with_reasons)


def _score_frame(model: ClvModel, window: Window, top_k: int, with_reasons: bool) -> pd.DataFrame:
    pred = model.predict(window.features, window.sequences, window.events)
    frame = pd.concat([
        pd.DataFrame({"customer_id": window.customer_ids, "cutoff_date": window.features["cutoff_date"].to_numpy()}),
        pred, pd.DataFrame({"lifecycle_stage": window.lifecycle.to_numpy()}),
    ], axis=1)
    if with_reasons:
        reasons = explain(model, window.features, window.sequences, top_k, window.events,
                          base=pred["predicted_value"].to_numpy(dtype=float)) if len(window) else []
        frame["reasons"] = ["; ".join(r.text for r in row) for row in reasons]
        frame["reason_details"] = reasons_json(reasons)
    return frame


def save_scores(scores: pd.DataFrame, folder: Path) -> None:
    """A cutoff's score_frame beside its windows: what served_model publishes, so it is computed once."""
    scores.to_parquet(Path(folder) / SCORES_FILE, index=False)


def read_scores(folder: Path) -> pd.DataFrame | None:
    path = Path(folder) / SCORES_FILE
    return pd.read_parquet(path) if path.exists() else None
