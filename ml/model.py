"""A trained CLV model as one object: preprocessing + network + what it was trained on. Saves to and loads from a folder."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ml import ziln
from ml.network import ClvNet, NetConfig
from ml.preprocess import Preprocessor

PREDICTION_COLUMNS = ["predicted_value", "p_return", "value_p10", "value_p50", "value_p90"]


@dataclass
class ClvModel:
    prep: Preprocessor
    net: ClvNet
    info: dict = field(default_factory=dict)  # training cutoff, horizon, metrics...

    @torch.no_grad()
    def predict(self, features: pd.DataFrame, sequences: np.ndarray, batch_size: int = 8192) -> pd.DataFrame:
        """Per row of `features`: expected value over the horizon, return probability and value quantiles."""
        self.net.eval()
        numeric, cats, seq = self.prep.transform(features, sequences)
        device = next(self.net.parameters()).device
        outs = []
        for s in range(0, len(numeric), batch_size):
            logits = self.net(*(torch.from_numpy(a[s:s + batch_size]).to(device) for a in (numeric, cats, seq)))
            outs.append(logits.float().cpu())
        logits = torch.cat(outs) if outs else torch.zeros((0, 3 if self.net.cfg.head == "ziln" else 1))
        scale = float(self.info.get("calibration", 1.0))
        if self.net.cfg.head == "mse":
            value = torch.expm1(logits[:, 0].clamp_min(0)).numpy() * scale  # trained on log1p(value)
            return pd.DataFrame({"predicted_value": value, "p_return": np.full(len(value), np.nan),
                                 "value_p10": np.nan, "value_p50": np.nan, "value_p90": np.nan})
        return pd.DataFrame({
            "predicted_value": ziln.expected_value(logits).numpy() * scale,
            "p_return": ziln.return_probability(logits).numpy(),
            "value_p10": ziln.quantile(logits, 0.1).numpy() * scale,
            "value_p50": ziln.quantile(logits, 0.5).numpy() * scale,
            "value_p90": ziln.quantile(logits, 0.9).numpy() * scale,
        })

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), folder / "network.pt")
        (folder / "model.json").write_text(json.dumps(
            {"net": self.net.cfg.to_dict(), "prep": self.prep.to_dict(), "info": self.info}, indent=1, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> "ClvModel":
        folder = Path(folder)
        spec = json.loads((folder / "model.json").read_text())
        net = ClvNet(NetConfig(**spec["net"]))
        net.load_state_dict(torch.load(folder / "network.pt", map_location=device, weights_only=True))
        net.to(device).eval()
        return cls(Preprocessor.from_dict(spec["prep"]), net, spec["info"])
