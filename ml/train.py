"""Training the deep CLV model: Adam, a plateau learning-rate schedule, early stopping on a validation split, seeded.

Runs on the GPU when there is one (bf16 autocast), on the CPU otherwise.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ml import ziln
from ml.model import ClvModel
from ml.network import ClvNet, NetConfig
from ml.preprocess import Preprocessor
from ml.windows import Window


@dataclass
class TrainConfig:
    hidden: int = 64
    depth: int = 2
    seq_hidden: int = 32
    dropout: float = 0.1
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-5
    max_epochs: int = 40
    patience: int = 5
    val_share: float = 0.15
    seed: int = 0
    head: str = "ziln"  # "ziln" or "mse"
    use_sequences: bool = True


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train_model(window: Window, cfg: TrainConfig = TrainConfig(), progress=None) -> ClvModel:
    """Fit on one labelled window. `progress(epoch, train_loss, val_loss)` is called after each epoch."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device()
    started = time.perf_counter()
    sequences = window.sequences if cfg.use_sequences else window.sequences[:, :, :0]
    prep = Preprocessor.fit(window.features, sequences)
    numeric, cats, seq = prep.transform(window.features, sequences)
    y = window.y.astype(np.float32)
    target = y if cfg.head == "ziln" else np.log1p(y)

    net = ClvNet(NetConfig(n_numeric=prep.n_numeric, cardinalities=prep.cardinalities,
                           n_seq_channels=len(prep.seq_channels), hidden=cfg.hidden, depth=cfg.depth,
                           seq_hidden=cfg.seq_hidden, dropout=cfg.dropout, head=cfg.head)).to(device)
    order = rng.permutation(len(y))
    n_val = max(1, int(len(y) * cfg.val_share))
    val_idx, train_idx = order[:n_val], order[n_val:]
    tensors = [torch.from_numpy(a) for a in (numeric, cats, seq, target)]
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, cfg.patience // 2))
    loss_fn = ziln.ziln_loss if cfg.head == "ziln" else _mse

    def batches(idx, shuffle):
        idx = rng.permutation(idx) if shuffle else idx
        for s in range(0, len(idx), cfg.batch_size):
            b = torch.from_numpy(idx[s:s + cfg.batch_size])
            yield [t[b].to(device, non_blocking=True) for t in tensors]

    best, best_state, bad, history = math.inf, None, 0, []
    for epoch in range(cfg.max_epochs):
        net.train()
        total, count = 0.0, 0
        for xn, xc, xs, yt in batches(train_idx, shuffle=True):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = net(xn, xc, xs)
            loss = loss_fn(out, yt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            total, count = total + loss.item() * len(yt), count + len(yt)
        val = _evaluate_loss(net, batches(val_idx, shuffle=False), loss_fn, device)
        sched.step(val)
        history.append({"epoch": epoch, "train_loss": total / count, "val_loss": val})
        if progress:
            progress(epoch, total / count, val)
        if val < best - 1e-4:
            best, best_state, bad = val, copy.deepcopy(net.state_dict()), 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    net.load_state_dict(best_state)
    net.eval()
    info = {
        "train_cutoff": str(window.cutoff), "n_train": int(len(y)), "best_val_loss": best,
        "epochs": len(history), "train_seconds": round(time.perf_counter() - started, 2),
        "device": device.type, "config": asdict(cfg),
    }
    return ClvModel(prep, net.cpu(), info)


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.mean((out.float()[:, 0] - y) ** 2)


@torch.no_grad()
def _evaluate_loss(net, batches, loss_fn, device) -> float:
    net.eval()
    total, count = 0.0, 0
    for xn, xc, xs, yt in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = net(xn, xc, xs)
        total, count = total + loss_fn(out, yt).item() * len(yt), count + len(yt)
    return total / max(count, 1)
