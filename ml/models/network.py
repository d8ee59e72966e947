"""The deep CLV network: static features through an MLP, and one sequence encoder (`NetConfig.encoder`): the weekly
activity through a 1D CNN + GRU ("cnn_gru"), or the recent event stream through a transformer ("transformer").

The two encodings are concatenated and a linear head emits 3 logits (ZILN) or 1 value (plain MSE baseline).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

ENCODERS = ("cnn_gru", "transformer")


@dataclass
class NetConfig:
    n_numeric: int
    cardinalities: list[int]  # one embedding per categorical column (index 0 = unknown)
    n_seq_channels: int  # 0: no weekly sequence encoder
    hidden: int = 64
    depth: int = 2
    seq_hidden: int = 32  # the sequence encoder's width (the GRU's, or the transformer's d_model)
    embed_dim: int = 4
    dropout: float = 0.1
    head: str = "ziln"  # "ziln" (3 logits) or "mse" (1 value)
    max_log_value: float = 30.0  # cap of log E[value | return]; set from the training data (see ml.models.ziln)
    encoder: str = "cnn_gru"  # one of ENCODERS
    max_events: int = 0  # transformer: the longest stream it reads (its positional embeddings)
    n_event_types: int = 0  # transformer: event type codes, 0 = padding
    n_event_values: int = 0  # transformer: numbers per event (ml.models.preprocess.transform_events)
    layers: int = 2  # transformer encoder layers
    heads: int = 2  # transformer attention heads

    def to_dict(self) -> dict:
        return asdict(self)


class EventEncoder(nn.Module):
    """A transformer over the event stream, newest first: type embedding + a projection of the event's numbers +
    a learned embedding of its position, self-attention that never looks at padding, and the mean over the real
    events. A stream with no events encodes to zeros."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        d = cfg.seq_hidden
        self.types = nn.Embedding(cfg.n_event_types, d, padding_idx=0)
        self.values = nn.Linear(cfg.n_event_values, d)
        self.positions = nn.Embedding(cfg.max_events, d)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, dim_feedforward=2 * d, dropout=cfg.dropout,
                                           batch_first=True, norm_first=True)
        # no nested-tensor fast path: training and inference take the same (masked) computation
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)

    def forward(self, types: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """types [B, L] (0 = padding), values [B, L, n_event_values] -> [B, seq_hidden]."""
        real = types > 0
        # a stream of padding only would attend to nothing (NaN): let it attend to its first slot, then drop it
        attend = real.clone()
        attend[:, 0] |= ~real.any(dim=1)
        pos = torch.arange(types.shape[1], device=types.device)
        x = self.types(types) + self.values(values) + self.positions(pos)[None]
        x = self.encoder(x, src_key_padding_mask=~attend)
        weight = real.unsqueeze(-1).to(x.dtype)
        return (x * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)


class ClvNet(nn.Module):
    def __init__(self, cfg: NetConfig):
        super().__init__()
        if cfg.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {cfg.encoder!r} (known: {', '.join(ENCODERS)})")
        self.cfg = cfg
        self.embeddings = nn.ModuleList(nn.Embedding(c, cfg.embed_dim) for c in cfg.cardinalities)
        width = cfg.n_numeric + cfg.embed_dim * len(cfg.cardinalities)
        layers: list[nn.Module] = []
        for _ in range(cfg.depth):
            layers += [nn.Linear(width, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        self.mlp = nn.Sequential(*layers)
        if cfg.encoder == "transformer":
            self.events = EventEncoder(cfg)
            width += cfg.seq_hidden
        elif cfg.n_seq_channels:
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

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor, sequence: torch.Tensor,
                event_types: torch.Tensor | None = None, event_values: torch.Tensor | None = None) -> torch.Tensor:
        return self.combine(numeric, categorical, self.encode(sequence, event_types, event_values))

    def encode(self, sequence: torch.Tensor, event_types: torch.Tensor | None = None,
               event_values: torch.Tensor | None = None) -> torch.Tensor | None:
        """The sequence encoder's output [B, seq_hidden] (None: the network has none): most of a forward pass's
        cost, and the same for every variant of a row's static features (explanations reuse it)."""
        if self.cfg.encoder == "transformer":
            return self.events(event_types, event_values)
        if self.cfg.n_seq_channels:
            s = self.conv(sequence.transpose(1, 2)).transpose(1, 2)  # [B, T, C] -> conv over time
            _, last = self.gru(s)
            return last[-1]
        return None

    def combine(self, numeric: torch.Tensor, categorical: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        """The head's outputs from the static features and the sequence encoding (`encode`)."""
        parts = [numeric] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        h = self.mlp(torch.cat(parts, dim=1))
        if code is not None:
            h = torch.cat([h, code.to(h.dtype)], dim=1)
        return self.head(h)
