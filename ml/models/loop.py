"""The deep CLV network's training loop: Adam, a plateau learning-rate schedule, early stopping on a validation split,
seeded, an optional wall-clock budget. Runs on the GPU when there is one (bf16 autocast), on the CPU otherwise; in
one process, or as one of N ranks (`OneProcess` / ml/models/distributed.py `Ranks`). ml/models/training.py picks which.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ml.models import ziln
from ml.models.network import ClvNet, NetConfig
from ml.models.preprocess import EVENT_VALUES, N_EVENT_TYPES, Preprocessor, transform_events
from ml.data.windows import Window


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
    val_share: float = 0.2
    seed: int = 0
    head: str = "ziln"  # "ziln" or "mse"
    use_sequences: bool = True
    encoder: str = "cnn_gru"  # "cnn_gru" (weekly activity) or "transformer" (event stream): ml/models/network.py
    layers: int = 2  # transformer encoder layers
    heads: int = 2  # transformer attention heads
    max_seconds: float | None = None  # stop (keeping the best epoch so far) once training has run this long
    cpu_threads: int | None = None  # torch threads on a CPU; None: all cores, or 1 while the machine is busy
    processes: int = 1  # > 1: DistributedDataParallel on that many processes (clv.yaml training.processes)


@dataclass
class Trained:
    """A trained network with the preprocessing it reads through and what its training said (the zoo's deep
    members wrap it: ml/models/zoo/deep.py)."""
    prep: Preprocessor
    net: ClvNet
    info: dict = field(default_factory=dict)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def validation_split(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows): one seeded split shared by every zoo member (the stacker learns on it)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, int(round(n * share))), n - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class OneProcess:
    """How the training loop shares its work: here one process does all of it. On N processes
    (ml/models/distributed.py `Ranks`) each takes its slice of every batch and the totals are summed across them."""
    rank, size = 0, 1

    def device(self) -> torch.device:
        return pick_device()

    def wrap(self, net: ClvNet) -> torch.nn.Module:
        """The module the loop steps (DistributedDataParallel's wrapper on N processes)."""
        return net

    def part(self, rows: np.ndarray) -> tuple[np.ndarray, float]:
        """This process's rows of one batch and the weight of their mean loss (0: a stand-in, nothing of its own)."""
        return rows, 1.0

    def total(self, loss_sum: float, count: int) -> tuple[float, int]:
        """A loss sum and row count over every process."""
        return loss_sum, count

    def anyone(self, flag: bool) -> bool:
        """Whether any process says so: they all stop at the same step."""
        return flag


def train_here(window: Window, cfg: TrainConfig, progress, split, ranks: OneProcess = OneProcess()) -> Trained:
    """The training loop in this process: all of it, or one rank's share (`ranks`, ml/models/distributed.py)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = ranks.device()
    started = time.perf_counter()
    transformer = cfg.encoder == "transformer"
    # one sequence encoder: the transformer reads the event stream instead of the weekly activity
    sequences = window.sequences if cfg.use_sequences and not transformer else window.sequences[:, :, :0]
    max_events = max(window.events.shape[1], 1) if transformer else 0
    event_types, event_values = transform_events(window.events, max_events)
    train_idx, val_idx = split if split is not None else validation_split(len(window), cfg.val_share, cfg.seed)
    prep = Preprocessor.fit(window.features.iloc[train_idx], sequences[train_idx])
    numeric, cats, seq = prep.transform(window.features, sequences)
    y = window.y.astype(np.float32)
    target = y if cfg.head == "ziln" else np.log1p(y)
    # a little above the largest value seen: exp(mu + sigma^2/2) cannot run away (see ml.models.ziln)
    max_log_value = float(np.log(max(float(y.max()), 1.0) * 5.0))

    net = ClvNet(NetConfig(n_numeric=prep.n_numeric, cardinalities=prep.cardinalities,
                           n_seq_channels=len(prep.seq_channels), hidden=cfg.hidden, depth=cfg.depth,
                           seq_hidden=cfg.seq_hidden, dropout=cfg.dropout, head=cfg.head,
                           max_log_value=max_log_value, encoder=cfg.encoder, max_events=max_events,
                           n_event_types=N_EVENT_TYPES if transformer else 0,
                           n_event_values=len(EVENT_VALUES) if transformer else 0,
                           layers=cfg.layers, heads=cfg.heads))
    net.init_head(list(ziln.head_init(y[train_idx])) if cfg.head == "ziln" else [float(target[train_idx].mean())])
    net.to(device)
    model = ranks.wrap(net)
    # the whole window sits on the device once; batches are gathered there
    tensors = [torch.from_numpy(a).to(device) for a in (numeric, cats, seq, event_types, event_values, target)]
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, cfg.patience // 2))
    loss_fn = ziln.ziln_loss if cfg.head == "ziln" else _mse
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def batches(idx, shuffle):
        # every process draws the same permutation (same seed) and takes its part of each global batch
        idx = rng.permutation(idx) if shuffle else idx
        for s in range(0, len(idx), cfg.batch_size):
            rows, weight = ranks.part(idx[s:s + cfg.batch_size])
            b = torch.from_numpy(rows).to(device)
            yield weight, [t[b] for t in tensors]

    def out_of_time() -> bool:  # asked of every process alike (the same cfg), so none waits alone in a collective
        return cfg.max_seconds is not None and ranks.anyone(time.perf_counter() - started > cfg.max_seconds)

    best, best_state, bad, history, stopped = math.inf, copy.deepcopy(net.state_dict()), 0, [], "max_epochs"
    for epoch in range(cfg.max_epochs):
        model.train()
        total, count = 0.0, 0
        for weight, (*inputs, yt) in batches(train_idx, shuffle=True):
            with torch.autocast(**autocast):
                out = model(*inputs)
            loss = loss_fn(out, yt)
            opt.zero_grad(set_to_none=True)
            # weighted so that the mean of the processes' gradients is that of the whole batch's mean loss
            (loss if weight == 1.0 else loss * weight).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            if weight:
                total, count = total + loss.item() * len(yt), count + len(yt)
            if out_of_time():
                break
        val = _evaluate_loss(net, batches(val_idx, shuffle=False), loss_fn, autocast, ranks)
        sched.step(val)
        total, count = ranks.total(total, count)
        history.append({"epoch": epoch, "train_loss": total / max(count, 1), "val_loss": val})
        if progress:
            progress(epoch, total / max(count, 1), val)
        if val < best - 1e-4:
            best, best_state, bad = val, copy.deepcopy(net.state_dict()), 0
        else:
            bad += 1
        if bad >= cfg.patience:
            stopped = "early_stopping"
            break
        if out_of_time():
            stopped = "time_budget"
            break
    net.load_state_dict(best_state)
    net.eval()
    info = {
        "train_cutoff": str(window.cutoff), "n_train": int(len(train_idx)), "n_validation": int(len(val_idx)),
        "best_val_loss": best, "epochs": len(history), "stopped_by": stopped,
        "train_seconds": round(time.perf_counter() - started, 2), "device": device.type, "config": asdict(cfg),
    }
    return Trained(prep, net.cpu(), info)


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.mean((out.float()[:, 0] - y) ** 2)


@torch.no_grad()
def _evaluate_loss(net, batches, loss_fn, autocast, ranks: OneProcess) -> float:
    net.eval()
    total, count = 0.0, 0
    for weight, (*inputs, yt) in batches:
        if not weight:
            continue
        with torch.autocast(**autocast):
            out = net(*inputs)
        total, count = total + loss_fn(out, yt).item() * len(yt), count + len(yt)
    total, count = ranks.total(total, count)
    return total / max(count, 1)
