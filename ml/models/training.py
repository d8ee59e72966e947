"""Training the deep CLV network: in this process, or with `processes` > 1 on N processes under torchrun
(ml/models/distributed.py). The loop itself, and what it is configured with and returns, is ml/models/loop.py.
"""
from __future__ import annotations

import numpy as np

from ml.data.windows import Window
from ml.models.distributed import train_on_processes
from ml.models.loop import OneProcess, TrainConfig, Trained, pick_device, train_here, validation_split
from ml.models.threads import cpu_threads

# what the zoo, the search and the benchmarks import from here
__all__ = ["OneProcess", "TrainConfig", "Trained", "pick_device", "train_network", "validation_split"]


def train_network(window: Window, cfg: TrainConfig = TrainConfig(), progress=None,
                  split: tuple[np.ndarray, np.ndarray] | None = None) -> Trained:
    """Fit on one labelled window. `progress(epoch, train_loss, val_loss)` is called after each epoch."""
    if cfg.processes > 1:
        return train_on_processes(window, cfg, progress, split)
    if pick_device().type == "cpu":
        with cpu_threads(cfg.cpu_threads) as n:
            trained = train_here(window, cfg, progress, split)
        trained.info["cpu_threads"] = n
        return trained
    return train_here(window, cfg, progress, split)
