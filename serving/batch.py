"""A batch of feature rows -> their answers with one model run: /predict_features at the speed of the batch path.

`ml.evaluation.explain.explain` sets each feature group to a typical customer's values in turn and runs the model once per
group (about 14 runs of every ensemble member for a batch). Here the batch's rows and, for the rows that ask for
reasons, one copy per group with that group set to typical are stacked into one frame and run through the model
once; the effects and reasons are then those of `explain` (same groups, same typical values, same words), computed
for the whole batch at once.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ml.evaluation.explain import SEQUENCE_FEATURE, feature_groups, group_names, reasons_from_effects
from ml.models.interface import ClvModel

logger = logging.getLogger("bentoml.clv_service")


def stacked_inputs(model: ClvModel, features: pd.DataFrame, sequences: np.ndarray, asked: np.ndarray,
                   events: np.ndarray | None = None):
    """(features, sequences, events, groups, names): the rows, then per group name the `asked` rows with the
    group's features (or the weekly activity) set to a typical customer's, as `explain` sets them (the event
    streams as they are)."""
    groups = feature_groups(model)
    names = group_names(model, groups)
    part = features.iloc[asked].reset_index(drop=True)
    frames, seqs = [features], [sequences]
    for name in names:
        if name == SEQUENCE_FEATURE:
            frames.append(part)
            seqs.append(np.broadcast_to(np.asarray(model.prep.seq_mean, dtype=sequences.dtype),
                                        (len(asked), *sequences.shape[1:])))
        else:
            frames.append(part.assign(**{c: model.prep.typical(c) for c in groups[name]}))
            seqs.append(sequences[asked])
    stacked_events = None if events is None else np.concatenate([events] + [events[asked]] * len(names))
    return pd.concat(frames, ignore_index=True), np.concatenate(seqs), stacked_events, groups, names


def predict(model: ClvModel, features: pd.DataFrame, sequences: np.ndarray, asked: np.ndarray,
            top_k: int, events: np.ndarray | None = None) -> tuple[pd.DataFrame, list[list[dict] | None]]:
    """The model's predictions for every row and, for the `asked` rows, `explain`'s top_k reasons as dicts (None
    for the others, and for all when the model cannot be explained: its predictions are still served)."""
    features = features.reset_index(drop=True)
    n = len(features)
    reasons: list[list[dict] | None] = [None] * n
    stacked = None
    if len(asked):
        try:
            stacked = stacked_inputs(model, features, sequences, asked, events)
        except Exception as exc:  # a model kind explain does not handle
            _no_reasons(model, exc)
    if stacked is None:
        return model.predict(features, sequences, events), reasons
    frame, seqs, stacked_events, groups, names = stacked
    out = model.predict(frame, seqs, stacked_events)
    value = out["predicted_value"].to_numpy(dtype=float)
    # effects[i, j]: the asked row i's expected value minus that with group j typical
    effects = value[asked][:, None] - value[n:].reshape(len(names), len(asked)).T
    part = features.iloc[asked].reset_index(drop=True)
    try:
        found = reasons_from_effects(model, part, sequences[asked], groups, names, effects, top_k)
        for i, row in zip(asked, found):
            reasons[i] = [r.to_dict() for r in row]
    except Exception as exc:
        _no_reasons(model, exc)
    return out.iloc[:n].reset_index(drop=True), reasons


def _no_reasons(model: ClvModel, exc: Exception) -> None:
    logger.warning("no reasons for %s model: %s: %s", type(model).__name__, type(exc).__name__, exc)
