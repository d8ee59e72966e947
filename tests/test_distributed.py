"""The deep network on 2 CPU processes (DistributedDataParallel under torchrun, gloo) against 1 process: the same
training up to the order of float sums; a rank that fails is one line to the caller, not a hang; the ranks die with
the process that started them; the setting reaches the zoo."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ml.models.distributed import DistributedTrainingError, train_on_processes
from ml.models.training import TrainConfig, train_network
from ml.models.zoo import fit_zoo
from ml.models.zoo.deep_ziln import DeepZiln
from ml.settings import TrainingConfig
from tests.test_zoo import shop_window

REPO = Path(__file__).resolve().parent.parent

# 1601 training rows: the last batch of 65 splits 33 / 32, so the ranks' loss weights are exercised. No dropout:
# its masks are drawn per rank, the one thing that is not the same math on 2 processes.
WINDOW = shop_window(n=2001, seed=3)
CFG = TrainConfig(hidden=32, depth=2, seq_hidden=16, dropout=0.0, batch_size=256, lr=4e-3, max_epochs=6, patience=3,
                  cpu_threads=1, seed=0)
# The two runs differ only in the order of float32 sums (a batch's mean as two half means, DDP's all-reduce of
# the gradients): ~1e-7 relative per step. Six epochs of Adam on 42 steps compound that to ~1e-5 at most (seen:
# below 1e-6); 1e-4 leaves room and still fails on any real difference (a wrong shard or weight moves the loss
# by 1e-2 or more).
LOSS_RTOL = 1e-5
PREDICTION_RTOL = 1e-3


@pytest.fixture(scope="module")
def both():
    """(1 process, 2 processes, their (epoch, train loss, val loss) per epoch)."""
    epochs = {1: [], 2: []}
    one = train_network(WINDOW, CFG, progress=lambda *e: epochs[1].append(e))
    two = train_network(WINDOW, replace(CFG, processes=2), progress=lambda *e: epochs[2].append(e))
    return one, two, epochs


def test_two_processes_train_as_one(both):
    one, two, epochs = both
    assert two.info["distributed"]["processes"] == 2 and two.info["distributed"]["backend"] == "gloo"
    assert "distributed" not in one.info
    assert two.info["n_train"] == one.info["n_train"] == 1601
    # each rank read its half of every batch (train and validation, every epoch), rank 0 the odd row
    r0, r1 = two.info["distributed"]["rows_per_rank"]
    assert r0 + r1 == two.info["epochs"] * len(WINDOW) and 0 <= r0 - r1 <= two.info["epochs"] * 9
    assert two.info["epochs"] == one.info["epochs"] and two.info["stopped_by"] == one.info["stopped_by"]
    assert two.info["best_val_loss"] == pytest.approx(one.info["best_val_loss"], rel=LOSS_RTOL)
    # rank 0 reported every epoch to the parent, with the losses summed over both ranks
    assert [e[0] for e in epochs[2]] == [e[0] for e in epochs[1]] == list(range(one.info["epochs"]))
    np.testing.assert_allclose(np.array(epochs[2])[:, 1:], np.array(epochs[1])[:, 1:], rtol=LOSS_RTOL)


def test_two_processes_predict_as_one(both):
    one, two, _ = both
    p1 = DeepZiln.from_trained(one).predict(WINDOW.features, WINDOW.sequences)
    p2 = DeepZiln.from_trained(two).predict(WINDOW.features, WINDOW.sequences)
    for col in ("predicted_value", "p_return", "value_p90"):
        np.testing.assert_allclose(p2[col], p1[col], rtol=PREDICTION_RTOL, atol=1e-4)


def test_a_failing_rank_is_one_line_not_a_hang():
    started = time.perf_counter()
    with pytest.raises(DistributedTrainingError) as failed:
        train_on_processes(WINDOW, replace(CFG, processes=2), entry="tests.ddp_failing_rank")
    message = str(failed.value)
    assert message == ("training on 2 processes failed on rank 1: "
                       "FloatingPointError: the loss went NaN on rank 1 (injected)")
    assert time.perf_counter() - started < 60  # rank 0 waited in an all-reduce: torchrun ended it


def test_a_rank_killed_at_launch_is_launched_once_more(both):
    """No rank failed in training (a rank killed, a rendezvous lost): torchrun runs once more, and says so."""
    one, _, _ = both
    again = train_on_processes(WINDOW, replace(CFG, processes=2), entry="tests.ddp_killed_rank")
    assert again.info["distributed"]["relaunched"] is True
    assert again.info["best_val_loss"] == pytest.approx(one.info["best_val_loss"], rel=LOSS_RTOL)


def test_the_setting_reaches_the_zoo():
    training = TrainingConfig(fast=True, search_budget_seconds=0, processes=2)
    result = fit_zoo(WINDOW, 90, training, names=["deep_ziln"])
    model = result.models["deep_ziln"]
    assert model.info["distributed"]["processes"] == 2 and model.info["config"]["processes"] == 2
    assert np.isfinite(model.predict(WINDOW.features, WINDOW.sequences)["predicted_value"]).all()
    with pytest.raises(ValueError, match="training.processes"):
        TrainingConfig(processes=0)



def test_the_ranks_die_with_their_parent(tmp_path):
    """A training step killed with SIGKILL (no cleanup of its own) takes torchrun and its ranks with it at once.
    Left alone, a rank would only die at its next epoch's progress line (a broken pipe), seconds later here."""
    script = ("from dataclasses import replace\n"
              "from ml.models.training import train_network\n"
              "from tests.test_distributed import CFG\n"
              "from tests.test_zoo import shop_window\n"
              "train_network(shop_window(n=30_000), replace(CFG, processes=2, max_epochs=100, patience=100),\n"
              "              progress=lambda *epoch: print('epoch', flush=True))\n")
    # the job folder (and so every command line of torchrun and its ranks) lies under tmp_path
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        assert parent.stdout.readline().strip() == "epoch"  # the ranks are in their second epoch (~5 s each)
        assert len(_processes_naming(tmp_path)) == 3  # torchrun and its two ranks
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 2
        while _processes_naming(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _processes_naming(tmp_path)
    finally:
        parent.kill()
        for pid in _processes_naming(tmp_path):  # only what this test started
            os.kill(pid, 9)


def _processes_naming(folder: Path) -> list[int]:
    """Live processes whose command line names `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder) in (proc / "cmdline").read_bytes().decode(errors="replace") \
                    and (proc / "stat").read_text().split(") ")[-1][0] != "Z":
                found.append(int(proc.name))
        except OSError:
            continue
    return found
