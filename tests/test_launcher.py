"""The launcher behind `make serve` (orchestration/launcher.py), for real: dagster dev on a one-asset workspace and
bentoml serve of a bare service (benchmarks/serving_echo.py) on free loopback ports, stopped by a signal or by one of
them dying. Each stop must take under 10 s, print no traceback, leave no process of the tree and free both ports."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
STOP_WITHIN_S = 10
TINY_DEFS = """import dagster as dg


@dg.asset
def one() -> int:
    return 1


defs = dg.Definitions(assets=[one])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bindable(port: int) -> bool:
    """A new server could listen on the port (with SO_REUSEADDR, as servers do: our probes leave TIME_WAITs)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
            return True
        except OSError:
            return False


def gone(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


class Run:
    """The launcher as a subprocess, its output in a file."""

    def __init__(self, tmp: Path, ports: tuple[int, int]) -> None:
        home = tmp / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        (tmp / "tiny_defs.py").write_text(TINY_DEFS)
        (tmp / "workspace.yaml").write_text(
            "load_from:\n  - python_file:\n      relative_path: tiny_defs.py\n      attribute: defs\n")
        self.ports, self.log = ports, tmp / "launcher.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestration.launcher", "--workspace", str(tmp / "workspace.yaml"),
             "--bento", "benchmarks.serving_echo:Echo", "--dagster-port", str(ports[0]), "--api-port", str(ports[1])],
            cwd=REPO, env={**os.environ, "DAGSTER_HOME": str(home)}, stdin=subprocess.DEVNULL,
            stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        self.seen: list[psutil.Process] = []

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tree(self) -> list[psutil.Process]:
        try:
            me = psutil.Process(self.proc.pid)
            procs = [me, *me.children(recursive=True)]
        except psutil.Error:
            return []
        self.seen += [p for p in procs if p not in self.seen]
        return procs

    def wait_ready(self, timeout: float = 90) -> None:
        urls = [f"http://127.0.0.1:{self.ports[0]}/server_info", f"http://127.0.0.1:{self.ports[1]}/readyz"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the launcher exited early:\n{self.output()[-3000:]}"
            try:
                if all(httpx.get(u, timeout=2).status_code == 200 for u in urls):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"not ready in {timeout} s:\n{self.output()[-3000:]}")

    def stopped(self, t0: float) -> tuple[int, float]:
        """(exit status, seconds since t0) of the launcher, at most STOP_WITHIN_S after t0."""
        try:
            code = self.proc.wait(timeout=max(0.1, t0 + STOP_WITHIN_S - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {STOP_WITHIN_S} s after the stop:\n{self.output()[-3000:]}")
        return code, time.monotonic() - t0

    def assert_clean(self, tree: list[psutil.Process]) -> None:
        out = self.output()
        assert "Traceback" not in out, out[-5000:]
        assert "launcher: stopped dagster dev, bentoml serve (" in out, out[-3000:]
        left = [p for p in tree if not gone(p)]
        assert not left, f"still running: {[(p.pid, p.cmdline()[:3]) for p in left if not gone(p)]}"
        assert bindable(self.ports[0]) and bindable(self.ports[1])

    def cleanup(self) -> None:
        self.tree()
        for p in self.seen:
            try:
                p.kill()
            except psutil.Error:
                pass
        self.proc.wait(timeout=10)


@pytest.fixture
def launched(tmp_path):
    run = Run(tmp_path, (free_port(), free_port()))
    yield run
    run.cleanup()


@pytest.mark.parametrize("signals", [[signal.SIGINT, signal.SIGINT], [signal.SIGTERM]], ids=["ctrl-c-twice", "sigterm"])
def test_a_signal_stops_the_whole_tree(launched, signals):
    launched.wait_ready()
    tree = launched.tree()
    # BentoML's workers sit in process groups of their own: a group kill alone would miss them
    assert len({os.getpgid(p.pid) for p in tree}) >= 4, [(p.pid, p.cmdline()[:3]) for p in tree]
    t0 = time.monotonic()
    for i, sig in enumerate(signals):
        if i:
            time.sleep(0.5)  # an impatient second Ctrl-C
        launched.proc.send_signal(sig)
    code, seconds = launched.stopped(t0)
    assert code == 0, launched.output()[-3000:]
    launched.assert_clean(tree)
    print(f"stopped in {seconds:.1f} s by {[s.name for s in signals]}: {launched.output().splitlines()[-1]}")


def test_a_server_dying_stops_the_rest(launched):
    launched.wait_ready()
    tree = launched.tree()
    bento = next(p for p in psutil.Process(launched.proc.pid).children() if "bentoml" in " ".join(p.cmdline()))
    assert bento.children(), "bentoml serve has workers"
    t0 = time.monotonic()
    bento.kill()  # its workers are orphans now: the launcher must still find and stop them
    code, _ = launched.stopped(t0)
    assert code == 1
    assert "launcher: bentoml serve was killed by SIGKILL on its own; stopping the rest" in launched.output()
    launched.assert_clean(tree)


def test_ctrl_c_while_starting(launched):
    time.sleep(3)  # dagster dev still importing or loading the code location
    tree = launched.tree()
    t0 = time.monotonic()
    launched.proc.send_signal(signal.SIGINT)
    code, _ = launched.stopped(t0)
    assert code == 0
    launched.assert_clean(tree)


def test_a_taken_port_stops_before_anything_starts(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        run = Run(tmp_path, (free_port(), port))
        try:
            assert run.proc.wait(timeout=30) == 1
        finally:
            run.cleanup()
    out = run.output()
    assert out.strip() == (f"launcher: port {port} on 127.0.0.1 is in use by PID {os.getpid()} "
                           f"({' '.join(' '.join(psutil.Process().cmdline()).split())[:80]}); stop it first "
                           f"(nothing started)"), out
