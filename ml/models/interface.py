"""A trained CLV model as one object, whatever its kind: the preprocessing, the fitted parts, and what it was
trained on. Every member of the zoo (ml/models/zoo/) is a ClvModel subclass with the same `fit` and `predict` and
the same folder format, so the leaderboard, the registry, the scores and the prediction API treat them alike.

`predict` reads the feature rows, their weekly activity and their event streams (`events`, ml.data.windows.Window
.events; None: empty streams), which only a member with `reads_events` is given (its `predict_raw` takes them).
It returns, per row, the expected value over the horizon (`predicted_value`), the return probability and
value quantiles, multiplied by the model's horizon calibration (`info["calibration"]`, see ml/models/calibration.py).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np
import pandas as pd

from ml.data.windows import Window
from ml.models.preprocess import Preprocessor
from ml.models.training import TrainConfig
from ml.settings import TrainingConfig

PREDICTION_COLUMNS = ["predicted_value", "p_return", "value_p10", "value_p50", "value_p90"]
VALUE_COLUMNS = ["predicted_value", "value_p10", "value_p50", "value_p90"]  # scaled by the calibration


@dataclass
class FitContext:
    """What a zoo member may use besides its window, shared by the members of one zoo (ml.models.zoo.fit_zoo)."""
    horizon_days: int
    training: TrainingConfig
    split: tuple[np.ndarray, np.ndarray]  # (train rows, validation rows): one seeded split for every member
    base: TrainConfig  # the deep network's starting configuration for this window
    recipe: TrainConfig | None = None  # a chosen deep recipe to retrain as it is (no search)
    fitted: dict[str, "ClvModel"] = field(default_factory=dict)  # the members trained so far, in zoo order
    say: Callable[[str], None] = lambda msg: None
    search_trials: list[dict] = field(default_factory=list)  # the deep model's search, when it ran
    # the BG/NBD + Gamma-Gamma whose outputs the learners read as features (fitted once per zoo), or None
    btyd_features: Callable[[], "ClvModel | None"] = lambda: None


class ClvModel:
    # the zoo member's one name (leaderboard, registry folders, asset metadata, files) and what it is, in words
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # gives every prediction column (a return probability and quantiles): may be served
    servable: ClassVar[bool] = True
    # kept as the book has it: the backtest does not calibrate it to the horizon
    baseline: ClassVar[bool] = False
    # constant past the oldest customer it saw: last in a choice for an older population (ml.pipeline.choose_order)
    tree_based: ClassVar[bool] = False
    # the members it is built from, trained before it in the same zoo (the ensemble's)
    needs: ClassVar[tuple[str, ...]] = ()
    # its predict_raw takes the event streams as a third argument (the others keep the two-argument form)
    reads_events: ClassVar[bool] = False
    # trained when clv.yaml's training.models is not set; False: only when named there (a costly challenger)
    by_default: ClassVar[bool] = True

    def __init__(self, prep: Preprocessor, info: dict | None = None):
        self.prep = prep
        self.info = dict(info or {})

    @classmethod
    def fit(cls, window: Window, ctx: FitContext) -> "ClvModel":
        """Fit on one labelled window, with what the zoo shares (ctx: settings, validation split, members so far)."""
        raise NotImplementedError

    def predict(self, features: pd.DataFrame, sequences: np.ndarray, events: np.ndarray | None = None
                ) -> pd.DataFrame:
        """Per row of `features`: expected value over the horizon, return probability and value quantiles."""
        out = raw_predictions(self, features.reset_index(drop=True), sequences, events)  # row i is row i
        scale = float(self.info.get("calibration", 1.0))
        for col in VALUE_COLUMNS:
            out[col] = out[col].to_numpy(dtype=float) * scale
        return out[PREDICTION_COLUMNS].reset_index(drop=True)

    def predict_raw(self, features: pd.DataFrame, sequences: np.ndarray) -> pd.DataFrame:
        """The model's own predictions, before the horizon calibration. NaN where the kind has no such output."""
        raise NotImplementedError

    def inputs(self, features: pd.DataFrame) -> pd.DataFrame:
        """The feature rows as this model's preprocessing reads them (a kind may derive columns of its own)."""
        return features

    def recipe(self) -> TrainConfig | None:
        """The deep network's training configuration inside this model (to retrain the same recipe later), if any."""
        return None

    # -- persistence: <folder>/model.json (name, preprocessing, info, the kind's spec) + the kind's own files;
    # ml.models.zoo.load_model reads it back
    def spec(self) -> dict:
        return {}

    def save_state(self, folder: Path) -> None:
        pass

    @classmethod
    def restore(cls, folder: Path, prep: Preprocessor, info: dict, spec: dict,
                load: Callable[[Path], "ClvModel"]) -> "ClvModel":
        """The model from its saved parts; `load` reads a nested model folder (an ensemble's members)."""
        raise NotImplementedError

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.save_state(folder)
        (folder / "model.json").write_text(json.dumps(
            {"name": self.name, "prep": self.prep.to_dict(), "info": self.info, "spec": self.spec()},
            indent=1, default=_plain))
        return folder


# once_per_identity's cache of (model, sequences) -> raw predictions inside shared_predictions()
_SHARED: ContextVar[dict | None] = ContextVar("shared_predictions", default=None)


@contextmanager
def shared_predictions():
    """Inside it, a model's raw predictions on a window's rows are made once: an ensemble stacks the predictions its
    members made already (judging a zoo predicts every member, then the ensemble over them). A window is told by
    its `sequences` array, so only whole, unaltered windows may be predicted inside (not explanations' variants)."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def raw_predictions(model: ClvModel, features: pd.DataFrame, sequences: np.ndarray,
                    events: np.ndarray | None = None) -> pd.DataFrame:
    """`model.predict_raw`, given the event streams when it reads them."""
    shared = _SHARED.get()
    out = once_per_identity(shared, (model, sequences), len(features), lambda: (
        model.predict_raw(features, sequences, events) if model.reads_events
        else model.predict_raw(features, sequences)))
    return out if shared is None else out.copy()  # the kept frame stays as it was made


def once_per_identity(cache: dict | None, objects: tuple, rows: int, make: Callable):
    """`make()` once per `objects`, told by identity, and row count, inside a context's `cache` (None: every
    time). The objects are kept with the value so that their ids stay theirs while the cache lives."""
    if cache is None:
        return make()
    key = tuple(id(o) for o in objects)
    if key in cache and cache[key][1] == rows:
        return cache[key][2]
    value = make()
    cache[key] = (objects, rows, value)
    return value


def empty_predictions(n: int) -> pd.DataFrame:
    return pd.DataFrame({c: np.full(n, np.nan) for c in PREDICTION_COLUMNS})


def _plain(value):
    """JSON for NumPy scalars and dates."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
