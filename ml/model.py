"""A trained CLV model as one object, whatever its kind: the preprocessing, the fitted parts, and what it was
trained on. Every member of the zoo (ml/zoo/) is a ClvModel: same `predict`, same folder format, so the
leaderboard, the registry, the scores and the prediction API treat them alike.

`predict` returns, per row, the expected value over the horizon (`predicted_value`), the return probability and
value quantiles, multiplied by the model's horizon calibration (`info["calibration"]`, see ml/calibration.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from ml.preprocess import Preprocessor

PREDICTION_COLUMNS = ["predicted_value", "p_return", "value_p10", "value_p50", "value_p90"]
VALUE_COLUMNS = ["predicted_value", "value_p10", "value_p50", "value_p90"]  # scaled by the calibration

_KINDS: dict[str, type["ClvModel"]] = {}


class ClvModel:
    kind: ClassVar[str] = ""
    # gives every prediction column (a return probability and quantiles): may be served
    servable: ClassVar[bool] = True

    def __init__(self, prep: Preprocessor, info: dict | None = None):
        self.prep = prep
        self.info = dict(info or {})

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _KINDS[cls.kind] = cls

    @property
    def name(self) -> str:
        """The model's zoo name (one name everywhere: leaderboard, registry, files)."""
        return self.info.get("name", self.kind)

    def predict(self, features: pd.DataFrame, sequences: np.ndarray) -> pd.DataFrame:
        """Per row of `features`: expected value over the horizon, return probability and value quantiles."""
        out = self.predict_raw(features, sequences)
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

    # -- persistence: <folder>/model.json (kind, preprocessing, info, the kind's spec) + the kind's own files
    def spec(self) -> dict:
        return {}

    def save_state(self, folder: Path) -> None:
        pass

    @classmethod
    def restore(cls, folder: Path, prep: Preprocessor, info: dict, spec: dict) -> "ClvModel":
        raise NotImplementedError

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.save_state(folder)
        (folder / "model.json").write_text(json.dumps(
            {"kind": self.kind, "prep": self.prep.to_dict(), "info": self.info, "spec": self.spec()},
            indent=1, default=_plain))
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> "ClvModel":
        import ml.zoo  # noqa: F401  (registers every kind)

        folder = Path(folder)
        saved = json.loads((folder / "model.json").read_text())
        kind = saved.get("kind", "deep")
        if kind not in _KINDS:
            raise ValueError(f"{folder}: unknown model kind {kind!r}")
        spec = saved.get("spec") or {"net": saved.get("net")}  # the first format kept the net at the top
        return _KINDS[kind].restore(folder, Preprocessor.from_dict(saved["prep"]), saved["info"], spec)


def empty_predictions(n: int) -> pd.DataFrame:
    return pd.DataFrame({c: np.full(n, np.nan) for c in PREDICTION_COLUMNS})


def _plain(value):
    """JSON for NumPy scalars and dates."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
