"""What the zoo's deep members share (not a member itself): preprocessing + ClvNet (MLP over static features, and
Conv1d + GRU over the weekly activity or a transformer over the event stream), its predictions, its files. The
members, ml/models/zoo/deep_ziln.py, deep_mse.py and deep_transformer.py, differ in the head or encoder they train."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from ml.data.windows import empty_events
from ml.models.interface import ClvModel
from ml.models.network import ClvNet, NetConfig
from ml.models.preprocess import Preprocessor, transform_events
from ml.models.search import chosen_config
from ml.models.threads import cpu_threads
from ml.models.training import TrainConfig, Trained, train_network


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

    @torch.no_grad()
    def logits(self, *inputs: np.ndarray, batch_size: int = 16_384) -> torch.Tensor:
        """Network outputs for already transformed inputs (numeric, categorical, sequence[, event types, values])."""
        self.net.eval()
        device = next(self.net.parameters()).device
        outs = []
        with cpu_threads():
            for s in range(0, len(inputs[0]), batch_size):
                parts = (torch.from_numpy(np.ascontiguousarray(a[s:s + batch_size])).to(device) for a in inputs)
                outs.append(self.net(*parts).float().cpu())
        return torch.cat(outs) if outs else torch.zeros((0, self.net.head.out_features))

    def predict_raw(self, features: pd.DataFrame, sequences: np.ndarray, events: np.ndarray | None = None
                    ) -> pd.DataFrame:
        inputs = self.prep.transform(features, sequences)
        if self.net.cfg.encoder == "transformer":  # no stream given: every customer's is empty
            events = events if events is not None else empty_events(len(features))
            inputs = (*inputs, *transform_events(events, self.net.cfg.max_events))
        return self.outputs(self.logits(*inputs))

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
