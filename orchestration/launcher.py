"""`make serve`: the Dagster UI and the prediction API side by side, and a clean stop of both.

    python -m orchestration.launcher [--host 127.0.0.1] [--dagster-port 3000] [--api-port 3001]
                                     [--workspace workspace.yaml] [--bento clv_service:latest] [--grace 5]

starts `dagster dev -w <workspace> -h <host> -p <dagster-port>` and `bentoml serve <bento> --host <host> --port
<api-port>`, each in a session of its own (a terminal's Ctrl-C reaches the launcher only), their output passed
through. On SIGINT, SIGTERM or SIGHUP, or when one of them exits on its own, it stops everything it started:

- it collects every descendant before any signal (BentoML's workers sit in process groups of their own; the launcher
  is the subreaper of its tree, so the orphans of a server that died stay in it);
- it sends each server SIGTERM, or SIGKILLs its tree at once if the server does not answer on its port yet (still
  starting: nothing to shut down, and an interrupted import prints a traceback);
- it waits up to --grace seconds for the whole tree to go, SIGKILLs what is left and prints one line:
  `launcher: stopped dagster dev, bentoml serve (9 processes) in 2.6 s`. A second Ctrl-C changes nothing.

Exit status: 0 after a signal, 1 when a server exited on its own or could not start. A port already taken stops it
before anything starts, with one line naming the port and the process that holds it.
"""
from __future__ import annotations

import argparse
import ctypes
import errno
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36  # linux/prctl.h


@dataclass
class Server:
    """One server the launcher runs: its name, its command line, the port it listens on."""
    name: str
    argv: list[str]
    port: int
    proc: subprocess.Popen | None = field(default=None, repr=False)


def say(line: str) -> None:
    """One line of the launcher's own, never a traceback (the terminal may be gone after a SIGHUP)."""
    try:
        print(f"launcher: {line}", file=sys.stderr, flush=True)
    except OSError:
        pass


def tool(name: str) -> str:
    """The venv's executable beside this Python (its symlink not resolved), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def servers(args: argparse.Namespace) -> list[Server]:
    return [
        Server("dagster dev", [tool("dagster"), "dev", "-w", args.workspace, "-h", args.host,
                               "-p", str(args.dagster_port)], args.dagster_port),
        Server("bentoml serve", [tool("bentoml"), "serve", args.bento, "--host", args.host,
                                 "--port", str(args.api_port)], args.api_port),
    ]


def prctl(option: int, value: int) -> None:
    """Linux's prctl(2); elsewhere nothing (orphans may then escape the tree walk)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def port_holder(host: str, port: int) -> str | None:
    """None when a server could listen on host:port (as servers do, with SO_REUSEADDR), else who holds it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return None
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                return f"cannot be bound ({e.strerror})"
    try:
        pids = sorted({c.pid for c in psutil.net_connections(kind="tcp")
                       if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid})
    except psutil.Error:
        pids = []
    for pid in pids:
        try:
            cmd = " ".join(" ".join(psutil.Process(pid).cmdline()).split())
        except psutil.Error:
            cmd = ""
        return f"is in use by PID {pid}" + (f" ({cmd[:80]})" if cmd else "")
    return "is in use (by a process of another user, or one that is closing)"


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def short(p: psutil.Process) -> str:
    """`dagster code-server`, `bentoml serve`, ...: a process named by its module or program and first argument."""
    try:
        cmd = p.cmdline()
    except psutil.Error:
        return str(p.pid)
    if "-m" in cmd:
        cmd = cmd[cmd.index("-m") + 1:]
    elif "-c" in cmd:
        return "python -c"
    elif len(cmd) > 1 and Path(cmd[0]).name.startswith("python"):
        cmd = cmd[1:]
    return " ".join([Path(cmd[0]).name, *cmd[1:2]]) if cmd else str(p.pid)


def tree_of(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


class Launcher:
    def __init__(self, servers: list[Server], host: str, grace: float) -> None:
        self.servers, self.host, self.grace = servers, host, grace
        self.signals: list[int] = []
        self.me = psutil.Process()

    def on_signal(self, signum: int, frame) -> None:
        self.signals.append(signum)  # only noted: the main loop stops, a second one changes nothing

    def descendants(self) -> list[psutil.Process]:
        try:
            return self.me.children(recursive=True)
        except psutil.Error:
            return []

    def reap(self) -> None:
        """The servers are Popen's to wait for; orphans reparented to the launcher are reaped here."""
        ours = {s.proc.pid for s in self.servers if s.proc}
        for s in self.servers:
            if s.proc:
                s.proc.poll()
        try:
            children = self.me.children()
        except psutil.Error:
            return
        for c in children:
            if c.pid not in ours:
                try:
                    if c.status() == psutil.STATUS_ZOMBIE:
                        c.wait(timeout=0)
                except (psutil.Error, ChildProcessError):
                    pass

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self.on_signal)
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        for s in self.servers:
            held = port_holder(self.host, s.port)
            if held:
                say(f"port {s.port} on {self.host} {held}; stop it first (nothing started)")
                return 1
        status = 0
        try:
            for s in self.servers:
                if self.signals:
                    break
                try:
                    # SIGTERM should the launcher itself be SIGKILLed. The children get SIGINT's default back from
                    # the launcher's handler (`dagster dev &` in a script inherits it ignored, and maps SIGTERM on it)
                    s.proc = subprocess.Popen(s.argv, stdin=subprocess.DEVNULL, start_new_session=True,
                                              preexec_fn=lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM))
                except OSError as e:
                    say(f"cannot start {s.name}: {e.strerror} ({s.argv[0]})")
                    status = 1
                    break
            while status == 0 and not self.signals:
                self.reap()
                for s in self.servers:
                    code = s.proc.returncode if s.proc else None
                    if code is not None:
                        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
                        say(f"{s.name} {how} on its own; stopping the rest")
                        status = 1
                        break
                time.sleep(0.2)
        finally:
            self.stop()
        return status

    def stop(self) -> None:
        started = [s for s in self.servers if s.proc]
        if not started:
            return
        t0 = time.monotonic()
        tree = self.descendants()  # before any signal: an orphan is harder to find
        notes = []
        for s in started:
            if s.proc.poll() is not None:
                continue
            if answers(self.host, s.port):
                # dagster dev: onto its Ctrl-C path (webserver, daemon, code server stopped in order); bentoml
                # serve: stops its workers
                s.proc.terminate()
            else:
                for p in tree_of(s.proc.pid):
                    try:
                        p.kill()
                    except psutil.Error:
                        pass
                notes.append(f"{s.name} still starting: SIGKILLed")
        leaders, termed = {s.proc.pid for s in started}, set()
        while True:
            self.reap()
            tree += [p for p in self.descendants() if p not in tree]  # what they start while stopping
            left = alive(tree)
            if not left:
                break
            # a process reparented to the launcher lost its parent (a server that died): nobody else stops it
            for p in left:
                try:
                    if p.pid not in leaders | termed and p.ppid() == self.me.pid:
                        p.terminate()
                        termed.add(p.pid)
                except psutil.Error:
                    pass
            if time.monotonic() - t0 > self.grace:
                names = [short(p) for p in left]
                for p in left:
                    try:
                        p.kill()
                    except psutil.Error:
                        pass
                psutil.wait_procs(left, timeout=2)
                self.reap()
                notes.append(f"{len(left)} SIGKILLed after {self.grace:g} s: {', '.join(names)}")
                break
            time.sleep(0.1)
        what = "; ".join([f"{len(tree)} processes", *notes])
        say(f"stopped {', '.join(s.name for s in started)} ({what}) in {time.monotonic() - t0:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.launcher", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--api-port", type=int, default=3001)
    parser.add_argument("--workspace", default="workspace.yaml", help="Dagster workspace file")
    parser.add_argument("--bento", default="clv_service:latest", help="bento tag, or a service as module:Class")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds before what is left is SIGKILLed")
    args = parser.parse_args(argv)
    return Launcher(servers(args), args.host, args.grace).run()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before the handlers were in place: nothing started yet
        sys.exit(130)
