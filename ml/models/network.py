"""The deep CLV network: static features through an MLP, weekly activity through a 1D CNN + GRU encoder.

The two encodings are concatenated and a linear head emits 3 logits (ZILN) or 1 value (plain MSE baseline).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class NetConfig:
    n_numeric: int
    cardinalities: list[int]  # one embedding per categorical column (index 0 = unknown)
    n_seq_channels: int  # 0: no sequence encoder
    hidden: int = 64
    depth: int = 2
    seq_hidden: int = 32
    embed_dim: int = 4
    dropout: float = 0.1
    head: str = "ziln"  # "ziln" (3 logits) or "mse" (1 value)
    max_log_value: float = 30.0  # cap of log E[value | return]; set from the training data (see ml.models.ziln)

    def to_dict(self) -> dict:
        return asdict(self)


class ClvNet(nn.Module):
    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = nn.ModuleList(nn.Embedding(c, cfg.embed_dim) for c in cfg.cardinalities)
        width = cfg.n_numeric + cfg.embed_dim * len(cfg.cardinalities)
        layers: list[nn.Module] = []
        for _ in range(cfg.depth):
            layers += [nn.Linear(width, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        self.mlp = nn.Sequential(*layers)
        if cfg.n_seq_channels:
            self.conv = nn.Sequential(
                nn.Conv1d(cfg.n_seq_channels, cfg.seq_hidden, kernel_size=3, padding=1), nn.ReLU(),
            )
            self.gru = nn.GRU(cfg.seq_hidden, cfg.seq_hidden, batch_first=True)
            width += cfg.seq_hidden
        self.head = nn.Linear(width, 3 if cfg.head == "ziln" else 1)

    @torch.no_grad()
    def init_head(self, biases: list[float]) -> None:
        """Start from the population: zero weights, biases = the training set's return logit, mu and sigma."""
        self.head.weight.mul_(0.01)
        self.head.bias.copy_(torch.tensor(biases[: self.head.out_features], dtype=self.head.bias.dtype))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor, sequence: torch.Tensor) -> torch.Tensor:
        parts = [numeric] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        h = self.mlp(torch.cat(parts, dim=1))
        if self.cfg.n_seq_channels:
            s = self.conv(sequence.transpose(1, 2)).transpose(1, 2)  # [B, T, C] -> conv over time
            _, last = self.gru(s)
            h = torch.cat([h, last[-1]], dim=1)
        return self.head(h)
