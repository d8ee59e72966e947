"""The deep network trained on N processes with torch DistributedDataParallel (clv.yaml `training.processes`).

The parent (ml/models/training.py train_network: every deep zoo member, and the Dagster step that trains them)
writes the window, the validation split and the TrainConfig to a job folder and runs

    torchrun --standalone --nproc-per-node N -m ml.models.distributed <job folder>

as a subprocess that dies with it and carries its environment. Every rank reads the job, runs the single-process
loop (ml/models/loop.py train_here) through `Ranks`, and rank 0 saves the trained network in the job folder, which
the parent reads back. gloo on CPUs; NCCL when each process of the machine has a GPU of its own.

Why the result equals the single-process one up to the order of float sums: every rank draws the same seeded
permutation per epoch and takes its slice of each global batch of `batch_size` rows; its mean loss is weighted by
N x its share of the batch, so DDP's mean of the rank gradients is the gradient of the whole batch's mean loss.
Validation and train losses are summed over the ranks. Dropout masks are drawn per rank: with dropout > 0 the two
runs are alike in distribution, not in value.

A rank that fails writes its one-line error to the job folder and exits; torchrun then ends the other ranks
(which would otherwise wait in an all-reduce) and the parent raises DistributedTrainingError with that line.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ml.data.build import die_with_parent
from ml.data.windows import Window, read_window, save_window
from ml.models.network import ClvNet, NetConfig
from ml.models.preprocess import Preprocessor
from ml.models.threads import cores, cpu_threads
from ml.models.loop import OneProcess, TrainConfig, Trained, train_here, validation_split
from ml.settings import REPO_ROOT

EPOCH_LINE = "clv-ddp-epoch "  # rank 0's per-epoch progress on stdout, read by the parent


class DistributedTrainingError(RuntimeError):
    """Training on N processes failed; the message is one line (the failing rank's error)."""


class Ranks(OneProcess):
    """One of N processes under torchrun: its slice of every batch, DDP's all-reduce of the gradients."""

    def __init__(self, seed: int):
        self.local = int(os.environ.get("LOCAL_RANK", 0))
        on_machine = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        self.backend = "nccl" if gpus >= on_machine else "gloo"
        self._device = torch.device(f"cuda:{self.local}" if self.backend == "nccl" else "cpu")
        if self.backend == "nccl":
            torch.cuda.set_device(self._device)
        # a rank that waits longer than this for the others fails instead of hanging (torchrun ends it sooner)
        dist.init_process_group(self.backend, timeout=timedelta(minutes=10))
        self.rank, self.size, self.seed = dist.get_rank(), dist.get_world_size(), seed
        self.rows = 0  # rows this rank trained and validated on, all epochs (its share, said in the info)

    def device(self) -> torch.device:
        return self._device

    def wrap(self, net: ClvNet) -> torch.nn.Module:
        # DDP starts every rank from rank 0's weights; dropout then draws per rank (rank 0 keeps the seed's stream)
        wrapped = DistributedDataParallel(net, device_ids=[self.local] if self.backend == "nccl" else None,
                                          broadcast_buffers=False)
        if self.rank:
            torch.manual_seed(self.seed + self.rank)
        return wrapped

    def part(self, rows: np.ndarray) -> tuple[np.ndarray, float]:
        mine = np.array_split(rows, self.size)[self.rank]
        if not len(mine):  # a last batch smaller than N: every rank must still step through the all-reduce
            return rows[:1], 0.0
        self.rows += len(mine)
        return mine, self.size * len(mine) / len(rows)

    def total(self, loss_sum: float, count: int) -> tuple[float, int]:
        # gathered and summed in rank order: every rank gets the same bits, so they take the same decisions
        parts = self.gather([loss_sum, float(count)])
        return sum(p[0] for p in parts), sum(int(p[1]) for p in parts)

    def gather(self, values: list[float]) -> list[list[float]]:
        """Every rank's `values`, in rank order."""
        mine = torch.tensor(values, dtype=torch.float64, device=self._device)
        parts = [torch.zeros_like(mine) for _ in range(self.size)]
        dist.all_gather(parts, mine)
        return [p.tolist() for p in parts]

    def anyone(self, flag: bool) -> bool:
        said = torch.tensor([int(flag)], device=self._device)
        dist.all_reduce(said, op=dist.ReduceOp.MAX)
        return bool(said.item())


def train_on_processes(window: Window, cfg: TrainConfig, progress=None, split=None,
                       entry: str = __name__) -> Trained:
    """`cfg.processes` ranks under torchrun; `progress(epoch, train_loss, val_loss)` after each epoch, as rank 0
    reports it. `entry`: the module torchrun runs in every rank (this one's `main`)."""
    started = time.perf_counter()
    split = split if split is not None else validation_split(len(window), cfg.val_share, cfg.seed)
    with tempfile.TemporaryDirectory(prefix="clv-ddp-") as tmp:
        job = Path(tmp)
        save_window(window, job / "window")
        np.savez(job / "split.npz", train=split[0], validation=split[1])
        (job / "config.json").write_text(json.dumps(asdict(cfg)))
        code, log_tail = _run_torchrun(job, cfg.processes, entry, progress)
        retried = code != 0 and not _rank_errors(job)
        if retried:  # no rank failed in our code (a launch or rendezvous hiccup, a killed rank): once more
            code, log_tail = _run_torchrun(job, cfg.processes, entry, progress)
        if code != 0:
            raise DistributedTrainingError(_failure(job, cfg.processes, code, log_tail))
        trained = read_trained(job / "result")
    trained.info["distributed"]["launch_seconds"] = round(time.perf_counter() - started, 2)
    trained.info["distributed"]["relaunched"] = retried
    return trained


def _run_torchrun(job: Path, processes: int, entry: str, progress) -> tuple[int, str]:
    """(torchrun's exit code, the last line of its log); its output is read as it comes for rank 0's progress."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", entry, str(job)]
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    # the run's environment (its CLV_HOME, settings, tokens), with the repository importable from any folder;
    # one thread per rank unless said otherwise (torchrun's own default, set here to spare its warning)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    log_path = job / "torchrun.log"
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=REPO_ROOT,
                                 preexec_fn=die_with_parent)
        try:
            for line in child.stdout:
                if line.startswith(EPOCH_LINE):
                    if progress:
                        progress(*json.loads(line[len(EPOCH_LINE):]))
                else:
                    log.write(line)
            code = child.wait()
        finally:  # the parent failed or was interrupted: the ranks end with it
            if child.poll() is None:
                child.kill()
                child.wait()
    return code, _last_word(log_path.read_text())


def _last_word(log: str) -> str:
    """What torchrun's log says went wrong, in one line: its root cause (the failed rank, its exit code and
    signal) when it summarised one, else its last line."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    if "Root Cause (first observed failure):" in lines:
        cause = lines[lines.index("Root Cause (first observed failure):") + 1:]
        fields = dict(ln.split(":", 1) for ln in cause if ":" in ln and not ln.startswith("="))
        said = {k.strip(): v.strip() for k, v in fields.items() if k.strip() in ("rank", "exitcode", "traceback")}
        if said:
            return "; ".join(f"{k} {v}" for k, v in said.items())
    return lines[-1] if lines else "no output"


def _rank_errors(job: Path) -> list[Path]:
    """The ranks' one-line errors (main writes one when its training fails), oldest first."""
    return sorted(job.glob("error-rank*.txt"), key=lambda p: p.stat().st_mtime_ns)


def _failure(job: Path, processes: int, code: int, log_tail: str) -> str:
    """One line: the first rank's error (the others fail after it, cut off from it), or torchrun's last word."""
    errors = _rank_errors(job)
    if errors:
        rank = errors[0].stem.removeprefix("error-rank")
        return f"training on {processes} processes failed on rank {rank}: {errors[0].read_text().strip()}"
    return f"training on {processes} processes failed (torchrun exit code {code}): {log_tail}"


def save_trained(trained: Trained, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    plain = lambda v: v.item() if isinstance(v, np.generic) else str(v)  # noqa: E731
    (folder / "prep.json").write_text(json.dumps(trained.prep.to_dict(), default=plain))
    (folder / "net.json").write_text(json.dumps(trained.net.cfg.to_dict(), default=plain))
    (folder / "info.json").write_text(json.dumps(trained.info, default=plain))
    torch.save(trained.net.state_dict(), folder / "network.pt")


def read_trained(folder: Path) -> Trained:
    net = ClvNet(NetConfig(**json.loads((folder / "net.json").read_text())))
    net.load_state_dict(torch.load(folder / "network.pt", map_location="cpu", weights_only=True))
    net.eval()
    prep = Preprocessor.from_dict(json.loads((folder / "prep.json").read_text()))
    return Trained(prep, net, json.loads((folder / "info.json").read_text()))


def _train_rank(job: Path) -> None:
    window = read_window(job / "window")
    saved = np.load(job / "split.npz")
    cfg = TrainConfig(**json.loads((job / "config.json").read_text()))
    ranks = Ranks(cfg.seed)

    def progress(epoch, train_loss, val_loss):
        if ranks.rank == 0:
            print(EPOCH_LINE + json.dumps([epoch, train_loss, val_loss]), flush=True)

    on_cpu = ranks.device().type == "cpu"
    threads = (cfg.cpu_threads or max(1, cores() // ranks.size)) if on_cpu else None
    with cpu_threads(threads) if on_cpu else contextlib.nullcontext():
        trained = train_here(window, cfg, progress, (saved["train"], saved["validation"]), ranks)
    rows = [int(r[0]) for r in ranks.gather([ranks.rows])]
    if ranks.rank == 0:
        trained.info["cpu_threads"] = threads
        trained.info["distributed"] = {"processes": ranks.size, "backend": ranks.backend, "rows_per_rank": rows}
        save_trained(trained, job / "result")
    # only on success: a failed rank just exits (the others may be stuck in a collective with it)
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    """One rank (torchrun runs this in each): train, or write the one-line error and exit non-zero."""
    die_with_parent()  # torchrun killed: this rank goes with it
    if os.getppid() == 1:  # torchrun was gone before that took hold
        sys.exit(1)
    job = Path((argv if argv is not None else sys.argv[1:])[0])
    rank = os.environ.get("RANK", "0")
    try:
        _train_rank(job)
    except Exception as exc:  # noqa: BLE001  said in one line to the parent, the traceback in torchrun's log
        traceback.print_exc()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        (job / f"error-rank{rank}.txt").write_text(f"{type(exc).__name__}: {message}")
        sys.exit(1)


if __name__ == "__main__":
    main()
