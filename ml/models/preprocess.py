"""Turn feature rows into the network's tensors, with statistics fitted on the training window only.

Heavy-tailed counts and spends go through a signed log1p before standardisation; a missing value becomes 0 plus a
missing-indicator column, so "unknown" is never confused with "zero". Columns that are entirely missing in training
(for example interaction features of a shop without events) are left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.data.windows import CATEGORICAL, EVENT_CHANNELS, EVENT_TYPES, KEY, SEQUENCE_CHANNELS

NON_FEATURES = set(KEY) | {"lifecycle_stage"}


@dataclass
class Preprocessor:
    numeric: list[str] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    with_missing_flag: list[str] = field(default_factory=list)
    categorical: dict[str, list[str]] = field(default_factory=dict)  # column -> vocabulary (index 1..)
    seq_channels: list[int] = field(default_factory=list)  # indices into SEQUENCE_CHANNELS kept
    seq_scale: list[float] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)  # categorical column -> most frequent value (typical customer)
    seq_mean: list[list[float]] = field(default_factory=list)  # mean raw weekly activity [weeks][channels]

    @classmethod
    def fit(cls, features: pd.DataFrame, sequences: np.ndarray) -> "Preprocessor":
        cat_cols = [c for c in CATEGORICAL if c in features and features[c].notna().any()]
        num_cols = [
            c for c in features.columns
            if c not in NON_FEATURES and c not in CATEGORICAL and pd.api.types.is_numeric_dtype(features[c])
            and features[c].notna().any()
        ]
        x = _signed_log(features[num_cols].to_numpy(dtype=float, na_value=np.nan))
        means = np.nanmean(x, axis=0)
        stds = np.nanstd(x, axis=0)
        stds = np.where(stds > 1e-9, stds, 1.0)
        vocab = {c: sorted(features[c].dropna().astype(str).unique().tolist()) for c in cat_cols}
        seq = np.log1p(np.maximum(sequences, 0))
        seq_std = seq.reshape(-1, seq.shape[-1]).std(axis=0) if seq.size else np.zeros(len(SEQUENCE_CHANNELS))
        keep = [i for i, s in enumerate(seq_std) if s > 0]
        modes = {c: str(features[c].dropna().astype(str).mode().iloc[0]) for c in cat_cols}
        seq_mean = sequences.mean(axis=0).tolist() if len(sequences) else []
        return cls(
            numeric=num_cols, means=means.tolist(), stds=stds.tolist(),
            with_missing_flag=[c for c in num_cols if features[c].isna().any()],
            categorical=vocab, seq_channels=keep, seq_scale=[float(seq_std[i]) for i in keep],
            modes=modes, seq_mean=seq_mean,
        )

    def typical(self, column: str):
        """A typical customer's raw value of a feature: the training mean in the network's space, mapped back
        (numeric), or the most frequent value (categorical)."""
        if column in self.modes:
            return self.modes[column]
        m = self.means[self.numeric.index(column)]
        return float(np.sign(m) * np.expm1(abs(m)))

    @property
    def n_numeric(self) -> int:
        return len(self.numeric) + len(self.with_missing_flag)

    @property
    def cardinalities(self) -> list[int]:
        return [len(v) + 1 for v in self.categorical.values()]

    def transform(self, features: pd.DataFrame, sequences: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(numeric float32 [n, n_numeric], categorical int64 [n, n_cat], sequence float32 [n, T, C])."""
        return (*self.transform_static(features), self.transform_sequences(sequences))

    def transform_static(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(numeric float32 [n, n_numeric], categorical int64 [n, n_cat]): what a model without a sequence
        encoder reads (the weekly arrays are the largest input: not transformed for nothing)."""
        missing = [c for c in self.numeric if c not in features]
        if missing:
            raise ValueError(f"features are missing columns the model was trained on: {', '.join(missing)}")
        raw = features[self.numeric].to_numpy(dtype=float, na_value=np.nan)
        x = (_signed_log(raw) - np.array(self.means)) / np.array(self.stds)
        flags = np.isnan(raw[:, [self.numeric.index(c) for c in self.with_missing_flag]]).astype(float)
        numeric = np.concatenate([np.nan_to_num(x, nan=0.0), flags], axis=1).astype(np.float32)
        cats = np.zeros((len(features), len(self.categorical)), dtype=np.int64)
        for j, (col, vocab) in enumerate(self.categorical.items()):
            values = features[col].astype("string") if col in features else pd.Series([None] * len(features))
            cats[:, j] = pd.Categorical(values, categories=vocab).codes + 1  # unknown or missing -> 0
        return numeric, cats

    def transform_sequences(self, sequences: np.ndarray) -> np.ndarray:
        """The weekly activity as the network reads it: float32 [n, T, C] of the kept channels, log-scaled."""
        seq = np.log1p(np.maximum(sequences[:, :, self.seq_channels], 0)) / np.array(self.seq_scale or [1.0])
        return seq.astype(np.float32)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessor":
        return cls(**d)


N_EVENT_TYPES = len(EVENT_TYPES) + 1  # the codes of ml.data.windows, 0 = padding
EVENT_VALUES = ["log_days_since_previous", "log_days_before_cutoff", "log_amount", "is_first"]


def transform_events(events: np.ndarray, max_events: int) -> tuple[np.ndarray, np.ndarray]:
    """A dense event stream [n, L, EVENT_CHANNELS] -> (type codes int64 [n, max_events], values float32
    [n, max_events, EVENT_VALUES]), cut to the newest max_events or padded with zeros. Days and money go through
    log1p (0 to about 10, which the encoder's layer norm takes as it is: no statistics to fit); a customer's first
    event has no gap (NaN), said by `is_first`."""
    events = events[:, :max_events]
    n, length = events.shape[:2]
    types = np.zeros((n, max_events), dtype=np.int64)
    values = np.zeros((n, max_events, len(EVENT_VALUES)), dtype=np.float32)
    if length:
        code = np.nan_to_num(events[:, :, EVENT_CHANNELS.index("event_type")]).astype(np.int64)
        types[:, :length] = np.where((code > 0) & (code < N_EVENT_TYPES), code, 0)
        gap = events[:, :, EVENT_CHANNELS.index("days_since_previous")]
        numbers = [np.nan_to_num(gap), events[:, :, EVENT_CHANNELS.index("days_before_cutoff")],
                   events[:, :, EVENT_CHANNELS.index("amount")]]
        values[:, :length, :3] = np.log1p(np.maximum(np.stack(numbers, axis=-1), 0))
        values[:, :length, 3] = np.isnan(gap)
        values[types == 0] = 0.0  # padding carries nothing
    return types, values


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))
