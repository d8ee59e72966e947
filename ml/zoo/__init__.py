"""The model zoo: every model the platform compares, trained on the same rows with one shared validation split.

One name per model, used everywhere (leaderboard, registry folders, asset metadata, files): MODEL_NAMES.
Baselines are kept as the book has them (no horizon calibration); the others are calibrated (ml/calibration.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from ml.model import ClvModel
from ml.settings import TrainingConfig
from ml.windows import Window
from ml.zoo.btyd import BtydModel
from ml.zoo.classic import FAMILIES, TREES, HurdleModel
from ml.zoo.deep import DeepModel
from ml.zoo.ensemble import MEMBERS, StackedEnsemble
from ml.zoo.heuristic import HeuristicModel

DESCRIPTIONS = {
    "historic_spend_rate": "heuristic: past spend per day x horizon",
    "btyd": "BG/NBD purchases x Gamma-Gamma spend (lifetimes)",
    "linear": "logistic regression (return) x linear regression (log value)",
    "linear_svm": "linear SVM (return, Platt-scaled) x linear SVR (log value)",
    "decision_tree": "decision tree classifier x regressor",
    "random_forest": "random forest classifier x regressor",
    "gradient_boosting": "gradient boosting classifier x regressor (histogram GBM)",
    "deep_ziln": "MLP + CNN/GRU sequence encoder, zero-inflated lognormal head",
    "deep_mse": "the same network trained with plain MSE on log1p(value)",
    "ensemble": "stacking of " + ", ".join(MEMBERS) + " on the validation fold",
}
MODEL_NAMES = tuple(DESCRIPTIONS)
BASELINES = ("historic_spend_rate", "btyd")
# constant past the oldest customer they saw (the ensemble when it stacks a tree): last in a choice for an older
# population (ml.pipeline.choose_order)
TREE_BASED = TREES + (("ensemble",) if set(MEMBERS) & set(TREES) else ())

__all__ = ["BtydModel", "DeepModel", "HeuristicModel", "HurdleModel", "StackedEnsemble", "MODEL_NAMES", "BASELINES",
           "DESCRIPTIONS", "TREE_BASED", "ZooResult", "fit_zoo"]


@dataclass
class ZooResult:
    models: dict[str, ClvModel] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # name -> one-line reason
    seconds: dict[str, float] = field(default_factory=dict)
    search_trials: list[dict] = field(default_factory=list)
    btyd_features: BtydModel | None = None  # fitted for the learners' BG/NBD features when "btyd" is not trained


def with_dependencies(names) -> list[str]:
    """The names in zoo order, with the ensemble's members added when the ensemble is asked for."""
    wanted = set(names)
    if "ensemble" in wanted:
        wanted |= set(MEMBERS)
    unknown = wanted - set(MODEL_NAMES)
    if unknown:
        raise ValueError(f"unknown model name(s): {', '.join(sorted(unknown))} (known: {', '.join(MODEL_NAMES)})")
    return [n for n in MODEL_NAMES if n in wanted]


def fit_zoo(window: Window, horizon_days: int, training: TrainingConfig = TrainingConfig(), names=None,
            deep_config=None, progress=None) -> ZooResult:
    """Fit the zoo (or `names`) on one labelled window. `deep_config`: a TrainConfig that skips the search
    (retraining a chosen recipe); otherwise the deep model is searched within training.search_budget_seconds.
    A member that fails is reported in `failures`; the others go on (the ensemble needs its members)."""
    from ml.search import base_config  # ml.train imports ml.zoo.deep: import it late
    from ml.train import validation_split

    say = progress or (lambda msg: None)
    names = with_dependencies(names or training.models or MODEL_NAMES)
    base = deep_config or base_config(len(window), training.fast, training.seed)
    split = validation_split(len(window), base.val_share, training.seed)
    result = ZooResult()
    if (window.y[split[0]] > 0).sum() < 10:
        raise ValueError(f"the training window at {window.cutoff} has fewer than 10 returning customers: "
                         "not enough to learn from")
    for name in names:
        say(f"training {name}")
        started = time.perf_counter()
        try:
            model = _fit_one(name, window, horizon_days, training, split, base, deep_config, result, say)
        except Exception as exc:  # noqa: BLE001  one member's failure must not stop the others
            result.failures[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            say(f"{name} failed: {result.failures[name]}")
            continue
        model.info.update(name=name, horizon_days=horizon_days, train_cutoff=str(window.cutoff))
        result.models[name] = model
        result.seconds[name] = round(time.perf_counter() - started, 2)
        say(f"{name} trained in {result.seconds[name]:.1f} s")
    return result


def _fit_one(name, window, horizon_days, training, split, base, deep_config, result, say) -> ClvModel:
    from ml.search import chosen_config, search
    from ml.train import train_model

    train_idx, val_idx = split
    if name == "historic_spend_rate":
        return HeuristicModel.fit(name, window, horizon_days)
    if name == "btyd":
        return BtydModel.fit(name, window, horizon_days)
    if name in FAMILIES:
        return HurdleModel.fit(name, name, window, train_idx, val_idx, fast=training.fast, seed=training.seed,
                               btyd=_btyd_for_features(window, horizon_days, result, say))
    if name == "deep_ziln":
        if deep_config is not None:
            return train_model(window, replace(deep_config, head="ziln"), split=split)
        budget = 0.0 if training.fast else training.search_budget_seconds
        model, result.search_trials = search(window, base, budget, split, progress=say)
        return model
    if name == "deep_mse":
        ziln_model = result.models.get("deep_ziln")
        recipe = chosen_config(ziln_model) if ziln_model is not None else base
        return train_model(window, replace(recipe, head="mse"), split=split)
    if name == "ensemble":
        members = {m: result.models[m] for m in MEMBERS if m in result.models}
        if len(members) < 2:
            raise ValueError(f"needs at least two trained members, has {', '.join(members) or 'none'}")
        return StackedEnsemble.fit(name, window, val_idx, members)
    raise ValueError(f"unknown model name {name!r}")


def servable_names(models: dict[str, ClvModel]) -> list[str]:
    return [n for n, m in models.items() if m.servable]


def _btyd_for_features(window, horizon_days, result: ZooResult, say) -> BtydModel | None:
    """The BTYD the learners read their BG/NBD features from: the zoo's own when it trained, else one fitted here
    (once per zoo); None (the learners go without, and it is said) when BG/NBD cannot be fitted on this window."""
    if isinstance(result.models.get("btyd"), BtydModel):
        return result.models["btyd"]
    if result.btyd_features is None and "btyd_features" not in result.failures:
        try:
            result.btyd_features = BtydModel.fit("btyd", window, horizon_days)
        except ValueError as exc:
            result.failures["btyd_features"] = f"the learners go without BTYD features: {exc}"
            say(result.failures["btyd_features"])
    return result.btyd_features
