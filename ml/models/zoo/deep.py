"""What the zoo's deep members share (not a member itself): preprocessing + ClvNet (MLP over static features,
Conv1d + GRU over the weekly activity), its predictions, its files. The members, ml/models/zoo/deep_ziln.py and
deep_mse.py, differ in the head they train."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from ml.models.interface import ClvModel
from ml.models.network import ClvNet, NetConfig
from ml.models.preprocess import Preprocessor
from ml.models.search import chosen_config
from ml.models.threads import cpu_threads
from ml.models.training import TrainConfig, Trained, train_network


class DeepModel(ClvModel):
    head: ClassVar[str] = ""  # the network's head: "ziln" or "mse" (ml/models/network.py)

    def __init__(self, prep: Preprocessor, net: ClvNet, info: dict | None = None):
        super().__init__(prep, info)
        self.net = net

    @classmethod
    def from_trained(cls, trained: Trained) -> "DeepModel":
        return cls(trained.prep, trained.net, trained.info)

    @classmethod
    def train(cls, window, cfg: TrainConfig, split=None, progress=None) -> "DeepModel":
        """The network trained with `cfg` and this member's head (`progress(epoch, train_loss, val_loss)`)."""
        return cls.from_trained(train_network(window, replace(cfg, head=cls.head), progress=progress, split=split))

    def recipe(self) -> TrainConfig:
        return chosen_config(self.info)

    @torch.no_grad()
    def logits(self, numeric: np.ndarray, cats: np.ndarray, seq: np.ndarray, batch_size: int = 16_384) -> torch.Tensor:
        """Network outputs for already transformed inputs."""
        self.net.eval()
        device = next(self.net.parameters()).device
        outs = []
        with cpu_threads():
            for s in range(0, len(numeric), batch_size):
                parts = (torch.from_numpy(np.ascontiguousarray(a[s:s + batch_size])).to(device)
                         for a in (numeric, cats, seq))
                outs.append(self.net(*parts).float().cpu())
        return torch.cat(outs) if outs else torch.zeros((0, self.net.head.out_features))

    def predict_raw(self, features: pd.DataFrame, sequences: np.ndarray) -> pd.DataFrame:
        logits = self.logits(*self.prep.transform(features, sequences))
        return self.outputs(logits)

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
