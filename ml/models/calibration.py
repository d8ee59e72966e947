"""The horizon problem: a model learns from the horizon after its training cutoff and is used on a later one.

Customers are older by then, and the later horizon may hold a season the training horizon lacked (on the built-in
shop the backtest's (t - H, t] holds the year-end peak and a Black-Friday promotion; its training horizon does not:
uncalibrated, the total is about 23 % short). A model cannot learn a season it has not seen in its labels, but the
shop has lived through that season before: the same model, applied to the labelled window a year before the one it
will score, shows how far off it is in that part of the year. That ratio (actual / predicted total on the year-ago
window) is the model's calibration factor; ClvModel.predict multiplies the value and its quantiles by it.

Leakage rule: the year-ago window's labels must have matured by the cutoff being scored (c + H <= scored cutoff);
ml/data/plan.py places it 52 weeks back. A shop without a year of labelled history, or whose year-ago window holds no
customers, gets no factor (1.0) and says so.
"""
from __future__ import annotations

import numpy as np

from ml.models.interface import ClvModel, raw_predictions
from ml.data.windows import Window

FACTOR_RANGE = (0.25, 4.0)  # a factor outside this says the window is unlike the scored one: clip, and it shows


def horizon_factor(model: ClvModel, window: Window) -> float:
    """Actual over predicted total value of `model` (uncalibrated) on a labelled window."""
    predicted = float(np.nansum(raw_predictions(model, window.features, window.sequences, window.events)[
        "predicted_value"]))
    actual = float(window.y.sum())
    if predicted <= 0 or actual <= 0:
        return 1.0
    return float(np.clip(actual / predicted, *FACTOR_RANGE))


def calibrate(model: ClvModel, window: Window | None) -> float:
    """Set the model's calibration factor from the year-ago window (1.0 without one); return it."""
    if window is None or len(window) == 0 or window.labels is None:
        why = ("no labelled window a year before the scored cutoff" if window is None else
               f"the window a year before ({window.cutoff}) holds no labelled customers")
        model.info.update(calibration=1.0, calibration_window=None, calibration_note=f"{why}: uncalibrated")
        return 1.0
    factor = horizon_factor(model, window)
    model.info.update(calibration=factor, calibration_window=str(window.cutoff),
                      calibration_note=f"actual / predicted total on the window at {window.cutoff}")
    return factor
