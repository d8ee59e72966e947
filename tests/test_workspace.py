"""One writer per workspace: a second run stops with one line; a killed run leaves no process behind, and the run
after it equals a clean one. Real `clv predict` runs in subprocesses, killed with SIGKILL as the OOM killer or
`kill -9` would."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from ml.lock import TOKEN, WorkspaceBusy, workspace_lock
from ml.data.simulator import simulate_shop

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2025-12-31"


@pytest.fixture(scope="module")
def orders(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lock_shop") / "orders.csv"
    simulate_shop(n_customers=1200, start="2024-01-01", end=AS_OF, seed=5).orders.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def clean_scores(orders, tmp_path_factory) -> pd.DataFrame:
    """The scores of an undisturbed run: what every rerun after a kill must equal."""
    folder = tmp_path_factory.mktemp("clean_run")
    code, err = finish(start(orders, folder / "work", folder / "scores.csv"))
    assert code == 0, err
    return sorted_scores(folder / "scores.csv")


def sorted_scores(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).sort_values("customer_id").reset_index(drop=True)


def start(orders: Path, workdir: Path, out: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "ml.cli", "predict", "--orders", str(orders), "--as-of", AS_OF,
               "--horizon-days", "90", "--fast", "--models", "linear", "--workdir", str(workdir), "--out", str(out)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def wait_for(condition, seconds: float = 300, what: str = "") -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_processes(token: str) -> list[psutil.Process]:
    """Every live process that carries a run's token (the run and its children)."""
    out = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(TOKEN) == token and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return out


def holder(workdir: Path) -> dict:
    try:
        return json.loads((workdir / ".lock").read_text() or "{}")
    except (OSError, ValueError):
        return {}


def dbt_child(proc: subprocess.Popen) -> psutil.Process | None:
    try:
        return next((c for c in psutil.Process(proc.pid).children(recursive=True)
                     if "dbt" in " ".join(c.cmdline())), None)
    except psutil.NoSuchProcess:
        return None


def test_the_lock_names_its_holder_and_ends_a_killed_holders_children(tmp_path):
    # a holder in another process, with a child that outlives it (as dbt outlives a killed run)
    script = (f"import sys, subprocess, time; sys.path.insert(0, {str(REPO)!r}); from ml.lock import workspace_lock\n"
              f"with workspace_lock({str(tmp_path)!r}, 'a test run'):\n"
              "    subprocess.Popen(['sleep', '300']); print('held', flush=True); time.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(WorkspaceBusy) as busy:
        with workspace_lock(tmp_path, "a second run", wait_seconds=1):
            pass
    message = str(busy.value)
    assert "in use by a test run (PID" in message and str(proc.pid) in message and "\n" not in message
    token = holder(tmp_path)["token"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    orphans = run_processes(token)
    assert [p.name() for p in orphans] == ["sleep"]  # the child survived its parent
    with workspace_lock(tmp_path, "the next run") as taken:
        assert taken["reaped"] == 1 and run_processes(token) == []
    assert holder(tmp_path) == {}  # released


def test_the_processes_of_the_holding_run_enter_its_lock_and_end_nothing(tmp_path):
    # a run whose steps are processes (Dagster's multiprocess executor): the run worker holds the lock by run id
    enter = (f"import json, sys; sys.path.insert(0, {str(REPO)!r}); from ml.lock import workspace_lock\n"
             f"with workspace_lock({str(tmp_path)!r}, 'a step', wait_seconds=1, key=sys.argv[1]) as h:\n"
             "    print(json.dumps(h))\n")
    with workspace_lock(tmp_path, "a run", key="run-1") as held:
        sibling = subprocess.Popen(["sleep", "300"])  # another step process of the run, carrying its token
        try:
            step = subprocess.run([sys.executable, "-c", enter, "run-1"], capture_output=True, text=True, timeout=60)
            assert step.returncode == 0, step.stderr
            entered = json.loads(step.stdout)
            assert entered["reentered"] and entered["token"] == held["token"] and entered["reaped"] == 0
            assert sibling.poll() is None  # not ended as a leftover
            with workspace_lock(tmp_path, "an in-process step", key="run-1") as here:  # the run's own process
                assert here["reentered"]
            other = subprocess.run([sys.executable, "-c", enter, "run-2"], capture_output=True, text=True,
                                   timeout=60)
            assert other.returncode != 0 and "in use by a run" in other.stderr  # another run still waits, then stops
            assert holder(tmp_path)["key"] == "run-1"  # a step leaving does not release its run's lock
        finally:
            sibling.kill()
            sibling.wait()
    assert holder(tmp_path) == {}


def test_a_step_process_whose_run_died_stops_instead_of_taking_the_lock(tmp_path, monkeypatch):
    script = (f"import sys, time; sys.path.insert(0, {str(REPO)!r}); from ml.lock import workspace_lock\n"
              f"with workspace_lock({str(tmp_path)!r}, 'a run', key='run-1'):\n"
              "    print('held', flush=True); time.sleep(300)\n")
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert worker.stdout.readline().strip() == "held"
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    monkeypatch.setenv(TOKEN, holder(tmp_path)["token"])  # a step process the killed run had started
    with pytest.raises(WorkspaceBusy, match="is gone"):
        with workspace_lock(tmp_path, "its step", key="run-1"):
            pass
    monkeypatch.delenv(TOKEN)
    with workspace_lock(tmp_path, "the next run", key="run-2") as taken:  # the next run takes it as usual
        assert not taken.get("reentered") and taken["key"] == "run-2"


def test_a_second_run_on_a_busy_workdir_stops_with_one_line(orders, tmp_path):
    workdir = tmp_path / "work"
    first = start(orders, workdir, tmp_path / "first.csv")
    wait_for(lambda: holder(workdir).get("what") or first.poll() is not None, what="the first run to take the workdir")
    assert first.poll() is None, first.communicate()[1]
    second = start(orders, workdir, tmp_path / "second.csv")
    code, err = finish(second)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"is in use by clv predict (PID {first.pid}" in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "second.csv").exists()
    code, err = finish(first)
    assert code == 0, err  # the first run was not disturbed
    assert len(pd.read_csv(tmp_path / "first.csv")) > 500


@pytest.mark.parametrize("moment", ["dbt", "training"])
def test_a_run_killed_mid_step_leaves_nothing_and_the_rerun_equals_a_clean_run(orders, clean_scores, tmp_path,
                                                                               moment):
    workdir = tmp_path / "work"
    killed = start(orders, workdir, tmp_path / "killed.csv")
    token = wait_for(lambda: holder(workdir).get("token"), what="the run to take the workdir")
    if moment == "dbt":
        wait_for(lambda: dbt_child(killed), what="dbt to start")
    else:  # the backtest step prints its heading on stderr, then trains (BG/NBD and the learners, on 3 folds);
        # lines are read as they come (no pause between them), so the kill lands while it trains
        next(line for line in killed.stderr if "backtest: the model zoo" in line)
    assert killed.poll() is None, "the run ended before it could be killed mid-step"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    # nothing of the killed run lives on: dbt is ended with it (PR_SET_PDEATHSIG), not left holding the warehouse
    wait_for(lambda: run_processes(token) == [], seconds=10, what="the killed run's processes to end")
    rerun = start(orders, workdir, tmp_path / "rerun.csv")
    code, err = finish(rerun)
    assert code == 0, err
    pd.testing.assert_frame_equal(sorted_scores(tmp_path / "rerun.csv"), clean_scores, check_exact=False, rtol=1e-9)
