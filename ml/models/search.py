"""Hyperparameter search for the deep model within a wall-clock budget (clv.yaml `training.search_budget_seconds`).

The default configuration is always trained first; then seeded random draws from SPACE, each only while the
budget left covers one more training of the length seen so far. Trials are compared on the validation loss of
the shared validation split; the best trial's network is kept (no retraining).
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, replace

from ml.models.training import TrainConfig, Trained, train_network
from ml.data.windows import Window

SPACE = {
    "hidden": [32, 64, 128],
    "depth": [1, 2, 3],
    "seq_hidden": [16, 32, 48],
    "lr": [1e-3, 2e-3, 4e-3],
    "batch_size": [256, 512, 1024],
    "dropout": [0.0, 0.1, 0.2],
}
MAX_TRIALS = 12


def base_config(n_rows: int, fast: bool = False, seed: int = 0) -> TrainConfig:
    """The starting configuration for a window of `n_rows`: bigger batches for big windows, few epochs when fast."""
    if fast:
        return TrainConfig(hidden=32, depth=2, seq_hidden=16, batch_size=256, lr=4e-3, max_epochs=8, patience=2,
                           seed=seed)
    if n_rows >= 200_000:
        # a million customers on two CPU cores: large batches, short patience and a 12-minute cap. Measured
        # (benchmarks/models.py): an epoch of 800k rows takes 2-4 minutes there and the validation loss gains
        # less than 0.3 % after the third epoch.
        return TrainConfig(batch_size=2048, lr=4e-3, patience=2, max_epochs=20, max_seconds=720, seed=seed)
    return TrainConfig(seed=seed)


def search(window: Window, base: TrainConfig, budget_seconds: float, split, progress=None) -> tuple[Trained, list]:
    """(best trained network, trials: one dict per trial with its configuration, validation loss, epochs, seconds)."""
    started = time.perf_counter()
    rng = random.Random(base.seed)
    tried, trials, best = set(), [], None
    candidate = base
    while candidate is not None:
        key = tuple(getattr(candidate, k) for k in SPACE)
        tried.add(key)
        t0 = time.perf_counter()
        left = budget_seconds - (t0 - started)
        if trials:  # later trials must fit in what is left of the budget
            candidate = replace(candidate, max_seconds=left)
        model = train_network(window, candidate, split=split)
        seconds = time.perf_counter() - t0
        trial = {"trial": len(trials), **{k: getattr(candidate, k) for k in SPACE},
                 "val_loss": round(float(model.info["best_val_loss"]), 5), "epochs": model.info["epochs"],
                 "seconds": round(seconds, 1)}
        trials.append(trial)
        if progress:
            progress(f"search trial {trial['trial']}: val loss {trial['val_loss']:.4f} in {seconds:.0f} s "
                     f"({', '.join(f'{k}={trial[k]}' for k in SPACE)})")
        if best is None or model.info["best_val_loss"] < best.info["best_val_loss"]:
            best = model
        longest = max(t["seconds"] for t in trials)
        remaining = budget_seconds - (time.perf_counter() - started)
        candidate = None
        if remaining >= longest and len(trials) < MAX_TRIALS:
            for _ in range(50):
                draw = replace(base, **{k: rng.choice(v) for k, v in SPACE.items()})
                if tuple(getattr(draw, k) for k in SPACE) not in tried:
                    candidate = draw
                    break
    best.info["search"] = {"budget_seconds": budget_seconds, "trials": len(trials),
                           "chosen": {k: best.info["config"][k] for k in SPACE}}
    best.info["config"]["max_seconds"] = None
    return best, trials


def chosen_config(info: dict) -> TrainConfig:
    """The training configuration a network was trained with, from its info (to retrain it on a later window)."""
    fields = asdict(TrainConfig())
    return TrainConfig(**{k: v for k, v in info["config"].items() if k in fields})
