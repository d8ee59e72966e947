"""The deep model in the zoo: preprocessing + ClvNet (MLP over static features, Conv1d + GRU over the weekly
activity). With the ZILN head it gives return probability, expected value and quantiles; with the MSE head
(trained on log1p(value), as the usual case studies do) only a value."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ml import ziln
from ml.model import ClvModel
from ml.network import ClvNet, NetConfig
from ml.preprocess import Preprocessor
from ml.threads import cpu_threads


class DeepModel(ClvModel):
    kind = "deep"

    def __init__(self, prep: Preprocessor, net: ClvNet, info: dict | None = None):
        super().__init__(prep, info)
        self.net = net

    @property
    def servable(self) -> bool:  # the MSE head has no return probability or quantiles
        return self.net.cfg.head == "ziln"

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
        return torch.cat(outs) if outs else torch.zeros((0, 3 if self.net.cfg.head == "ziln" else 1))

    def predict_raw(self, features: pd.DataFrame, sequences: np.ndarray) -> pd.DataFrame:
        logits = self.logits(*self.prep.transform(features, sequences))
        return self.outputs(logits)

    def outputs(self, logits: torch.Tensor) -> pd.DataFrame:
        cap = self.net.cfg.max_log_value
        if self.net.cfg.head == "mse":
            value = torch.expm1(logits[:, 0].clamp(0, cap)).numpy()  # trained on log1p(value)
            nan = np.full(len(value), np.nan)
            return pd.DataFrame({"predicted_value": value, "p_return": nan, "value_p10": nan, "value_p50": nan,
                                 "value_p90": nan})
        return pd.DataFrame({
            "predicted_value": ziln.expected_value(logits, cap).numpy(),
            "p_return": ziln.return_probability(logits).numpy(),
            "value_p10": ziln.quantile(logits, 0.1, cap).numpy(),
            "value_p50": ziln.quantile(logits, 0.5, cap).numpy(),
            "value_p90": ziln.quantile(logits, 0.9, cap).numpy(),
        })

    def spec(self) -> dict:
        return {"net": self.net.cfg.to_dict()}

    def save_state(self, folder: Path) -> None:
        torch.save(self.net.state_dict(), folder / "network.pt")

    @classmethod
    def restore(cls, folder: Path, prep: Preprocessor, info: dict, spec: dict) -> "DeepModel":
        net = ClvNet(NetConfig(**spec["net"]))
        net.load_state_dict(torch.load(folder / "network.pt", map_location="cpu", weights_only=True))
        net.eval()
        return cls(prep, net, info)
