"""What the zoo's deep members share (not a member itself): preprocessing + ClvNet (MLP over static features, and
Conv1d + GRU over the weekly activity or a transformer over the event stream), its predictions, its files. The
members, ml/models/zoo/deep_ziln.py, deep_mse.py and deep_transformer.py, differ in the head or encoder they train."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from ml.data.windows import empty_events
from ml.models.interface import ClvModel, once_per_identity
from ml.models.network import ClvNet, NetConfig
from ml.models.preprocess import Preprocessor, transform_events
from ml.models.search import chosen_config
from ml.models.threads import cpu_threads
from ml.models.training import TrainConfig, Trained, train_network


# ml.models.interface.once_per_identity's cache of (net, sequences, events) -> encoding inside reused_encodings()
_ENCODINGS: ContextVar[dict | None] = ContextVar("reused_encodings", default=None)


@contextmanager
def reused_encodings(enabled: bool = True):
    """Inside it, a deep network encodes a given weekly-activity array and event streams once: an explanation
    predicts the same rows once per feature group with only static features changed, and the sequence encoder
    (GRU, transformer) is most of a prediction's cost. Arrays are told by identity, so only unaltered ones may be
    passed again (a changed array must be a new one, as explain's are). Nested uses share one cache;
    `enabled=False`: every run inside encodes anew (what the reuse is measured and checked against)."""
    if enabled and _ENCODINGS.get() is not None:
        yield
        return
    token = _ENCODINGS.set({} if enabled else None)
    try:
        yield
    finally:
        _ENCODINGS.reset(token)


class DeepModel(ClvModel):
    head: ClassVar[str] = ""  # the network's head: "ziln" or "mse" (ml/models/network.py)
    encoder: ClassVar[str] = "cnn_gru"  # its sequence encoder, whatever recipe it retrains (ml/models/network.py)
    reads_events = True  # a transformer network reads them; a CNN/GRU one passes them by

    def __init__(self, prep: Preprocessor, net: ClvNet, info: dict | None = None):
        super().__init__(prep, info)
        self.net = net

    @classmethod
    def from_trained(cls, trained: Trained) -> "DeepModel":
        return cls(trained.prep, trained.net, trained.info)

    @classmethod
    def train(cls, window, cfg: TrainConfig, split=None, progress=None) -> "DeepModel":
        """The network trained with `cfg` and this member's head (`progress(epoch, train_loss, val_loss)`)."""
        cfg = replace(cfg, head=cls.head, encoder=cls.encoder)
        return cls.from_trained(train_network(window, cfg, progress=progress, split=split))

    def recipe(self) -> TrainConfig:
        return chosen_config(self.info)

    def predict_raw(self, features: pd.DataFrame, sequences: np.ndarray, events: np.ndarray | None = None
                    ) -> pd.DataFrame:
        numeric, categorical = self.prep.transform_static(features)
        code = once_per_identity(_ENCODINGS.get(), (self.net, sequences, events), len(features),
                                 lambda: self._encoding(features, sequences, events))
        return self.outputs(self._combined(numeric, categorical, code))

    @torch.no_grad()
    def _encoding(self, features: pd.DataFrame, sequences: np.ndarray, events: np.ndarray | None,
                  batch_size: int = 16_384) -> torch.Tensor | None:
        """The sequence encoder's output for every row (ClvNet.encode, in batches) from what it reads: the
        weekly activity or the event streams. None when the network has no sequence encoder."""
        if self.net.cfg.encoder == "transformer":  # no stream given: every customer's is empty
            events = events if events is not None else empty_events(len(features))
            streams = (np.zeros((len(features), 0, 0), dtype=np.float32),
                       *transform_events(events, self.net.cfg.max_events))
        elif self.net.cfg.n_seq_channels:
            streams = (self.prep.transform_sequences(sequences),)
        else:
            return None
        if not len(features):
            return torch.zeros((0, self.net.cfg.seq_hidden))
        return torch.cat(list(self._batched(self.net.encode, streams, batch_size)))

    @torch.no_grad()
    def _combined(self, numeric: np.ndarray, categorical: np.ndarray, code: torch.Tensor | None,
                  batch_size: int = 16_384) -> torch.Tensor:
        if not len(numeric):
            return torch.zeros((0, self.net.head.out_features))
        inputs = (numeric, categorical) if code is None else (numeric, categorical, code)
        return torch.cat(list(self._batched(
            lambda n, c, e=None: self.net.combine(n, c, e), inputs, batch_size)))

    def _batched(self, fn, arrays, batch_size: int):
        """fn over row batches of `arrays` (NumPy or torch), on the network's device, outputs back as float32 on
        the CPU."""
        self.net.eval()
        device = next(self.net.parameters()).device
        with cpu_threads():
            for s in range(0, len(arrays[0]), batch_size):
                parts = (a[s:s + batch_size] if isinstance(a, torch.Tensor)
                         else torch.from_numpy(np.ascontiguousarray(a[s:s + batch_size])) for a in arrays)
                yield fn(*(p.to(device) for p in parts)).float().cpu()

    def outputs(self, logits: torch.Tensor) -> pd.DataFrame:
        """The prediction columns from the network's outputs (each head has its own)."""
        raise NotImplementedError

    def spec(self) -> dict:
        return {"net": self.net.cfg.to_dict()}

    def save_state(self, folder: Path) -> None:
        torch.save(self.net.state_dict(), folder / "network.pt")

    @classmethod
    def restore(cls, folder: Path, prep: Preprocessor, info: dict, spec: dict, load) -> "DeepModel":
        net = ClvNet(NetConfig(**spec["net"]))
        net.load_state_dict(torch.load(folder / "network.pt", map_location="cpu", weights_only=True))
        net.eval()
        return cls(prep, net, info)
