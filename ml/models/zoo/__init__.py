"""The model zoo: every model the platform compares, trained on the same rows with one shared validation split.

A member is one ClvModel subclass in one file with the same `fit(window, ctx)` / `predict`; ZOO lists them in the
order they train (a member's `needs` come before it). Adding a member is one new file and one line below. Its
`name` is used everywhere: leaderboard, registry folders, asset metadata, files. Baselines are kept as the book has
them (no horizon calibration in the backtest); the others are calibrated (ml/models/calibration.py).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ml.data.windows import Window
from ml.models.interface import ClvModel, FitContext
from ml.models.preprocess import Preprocessor
from ml.models.search import base_config
from ml.models.training import validation_split
from ml.models.zoo.btyd import BtydModel
from ml.models.zoo.decision_tree import DecisionTree
from ml.models.zoo.deep_mse import DeepMse
from ml.models.zoo.deep_transformer import DeepTransformer
from ml.models.zoo.deep_ziln import DeepZiln
from ml.models.zoo.ensemble import StackedEnsemble
from ml.models.zoo.gradient_boosting import GradientBoosting
from ml.models.zoo.historic_spend_rate import HistoricSpendRate
from ml.models.zoo.linear import Linear
from ml.models.zoo.linear_svm import LinearSvm
from ml.models.zoo.random_forest import RandomForest
from ml.settings import TrainingConfig

ZOO: tuple[type[ClvModel], ...] = (
    HistoricSpendRate,
    BtydModel,
    Linear,
    LinearSvm,
    DecisionTree,
    RandomForest,
    GradientBoosting,
    DeepZiln,
    DeepMse,
    DeepTransformer,
    StackedEnsemble,
)
MEMBERS: dict[str, type[ClvModel]] = {member.name: member for member in ZOO}
MODEL_NAMES = tuple(MEMBERS)
DEFAULT_MODELS = tuple(name for name, member in MEMBERS.items() if member.by_default)  # training.models unset
DESCRIPTIONS = {name: member.description for name, member in MEMBERS.items()}
BASELINES = tuple(name for name, member in MEMBERS.items() if member.baseline)
# reads the event streams (dbt customer_events), or is built on one that does: the runs that train or score none
# build no streams (ml.pipeline.event_stream_length)
STREAM_READERS = tuple(name for name, member in MEMBERS.items()
                       if any(getattr(MEMBERS[n], "encoder", "") == "transformer" for n in (name, *member.needs)))
# a tree, or built on one: constant past the oldest customer it saw (last in a choice for an older population)
TREE_BASED = tuple(name for name, member in MEMBERS.items()
                   if member.tree_based or any(MEMBERS[n].tree_based for n in member.needs))


@dataclass
class ZooResult:
    models: dict[str, ClvModel] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # name -> one-line reason
    seconds: dict[str, float] = field(default_factory=dict)
    search_trials: list[dict] = field(default_factory=list)
    btyd_features: BtydModel | None = None  # fitted for the learners' BG/NBD features when "btyd" is not trained
    rows: int = 0  # the customers the members learned from (training.max_rows of rows_available at most)
    rows_available: int = 0


def with_dependencies(names) -> list[str]:
    """The names in zoo order, with the members a member needs added."""
    wanted = set(names)
    unknown = wanted - set(MEMBERS)
    if unknown:
        raise ValueError(f"unknown model name(s): {', '.join(sorted(unknown))} (known: {', '.join(MEMBERS)})")
    for name in list(wanted):
        wanted |= set(MEMBERS[name].needs)
    return [n for n in MEMBERS if n in wanted]


def fit_zoo(window: Window, horizon_days: int, training: TrainingConfig = TrainingConfig(), names=None,
            deep_config=None, progress=None) -> ZooResult:
    """Fit the zoo (or `names`) on one labelled window. `deep_config`: a TrainConfig that skips the search
    (retraining a chosen recipe); otherwise the deep model is searched within training.search_budget_seconds.
    A member that fails is reported in `failures`; the others go on (the ensemble needs its members)."""
    say = progress or (lambda msg: None)
    names = with_dependencies(names or training.models or DEFAULT_MODELS)
    result = ZooResult(rows_available=len(window))
    window = window.at_most(training.max_rows)
    result.rows = len(window)
    if result.rows < result.rows_available:
        say(f"learning from {result.rows:,} of the window's {result.rows_available:,} customers (training.max_rows)")
    # how many processes train the network is this run's setting, not part of a recipe a window learned
    recipe = replace(deep_config, processes=training.processes) if deep_config is not None else None
    base = recipe or replace(base_config(len(window), training.fast, training.seed), processes=training.processes)
    split = validation_split(len(window), base.val_share, training.seed)
    if (window.y[split[0]] > 0).sum() < 10:
        raise ValueError(f"the training window at {window.cutoff} has fewer than 10 returning customers: "
                         "not enough to learn from")
    ctx = FitContext(horizon_days, training, split, base, recipe=recipe, fitted=result.models, say=say,
                     search_trials=result.search_trials,
                     btyd_features=lambda: _btyd_for_features(window, horizon_days, result, say))
    for name in names:
        say(f"training {name}")
        started = time.perf_counter()
        try:
            model = MEMBERS[name].fit(window, ctx)
        except Exception as exc:  # noqa: BLE001  one member's failure must not stop the others
            result.failures[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            say(f"{name} failed: {result.failures[name]}")
            continue
        model.info.update(name=name, horizon_days=horizon_days, train_cutoff=str(window.cutoff),
                          train_rows=result.rows, train_rows_available=result.rows_available)
        result.models[name] = model
        result.seconds[name] = round(time.perf_counter() - started, 2)
        say(f"{name} trained in {result.seconds[name]:.1f} s")
    return result


def servable_names(models: dict[str, ClvModel]) -> list[str]:
    return [n for n, m in models.items() if m.servable]


def load_model(folder: str | Path) -> ClvModel:
    """A model saved with ClvModel.save, as the zoo member it was (an ensemble's members with it)."""
    folder = Path(folder)
    saved = json.loads((folder / "model.json").read_text())
    name = saved.get("name") or saved.get("info", {}).get("name")  # files of the first format name it in info
    if name not in MEMBERS:
        raise ValueError(f"{folder}: unknown zoo member {name!r} (known: {', '.join(MEMBERS)})")
    spec = saved.get("spec") or {"net": saved.get("net")}  # the first format kept the net at the top
    return MEMBERS[name].restore(folder, Preprocessor.from_dict(saved["prep"]), saved["info"], spec, load_model)


def _btyd_for_features(window, horizon_days, result: ZooResult, say) -> BtydModel | None:
    """The BTYD the learners read their BG/NBD features from: the zoo's own when it trained, else one fitted here
    (once per zoo); None (the learners go without, and it is said) when BG/NBD cannot be fitted on this window."""
    if isinstance(result.models.get("btyd"), BtydModel):
        return result.models["btyd"]
    if result.btyd_features is None and "btyd_features" not in result.failures:
        try:
            result.btyd_features = BtydModel.fit_histories(window, horizon_days)
        except ValueError as exc:
            result.failures["btyd_features"] = f"the learners go without BTYD features: {exc}"
            say(result.failures["btyd_features"])
    return result.btyd_features
