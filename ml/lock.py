"""One writer per workspace: a run holds its workspace's lock from start to end, and cleans up after a killed one.

DuckDB takes one writer per file, and a run rewrites the warehouse, datasets and models of its workspace; two runs
at once would mix their files. The lock is an advisory `flock` on `<workspace>/.lock`, released by the kernel when
its holder dies however it dies, so a killed run never leaves the workspace locked. What a killed run may leave
is its children (dbt, reparented to PID 1 and still holding DuckDB's lock): every process a run starts inherits
the run's token in its environment, and the next run to take the lock ends the processes that carry the old one.

A run whose steps are processes of their own (Dagster's multiprocess executor) takes the lock once, in the process
that starts them, under its run id (`key`). A step process asking for the lock with the same key, and the holder's
token in its environment, enters at once: the lock is its run's, and it is no leftover to end.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import psutil

TOKEN = "CLV_RUN_TOKEN"  # environment variable every process of a run inherits
LOCK_FILE = ".lock"


class WorkspaceBusy(RuntimeError):
    """Another live run holds the workspace; the message is one line naming it."""


@contextmanager
def workspace_lock(folder: str | Path, what: str, wait_seconds: float = 0.0, key: str | None = None):
    """Hold `folder`'s lock while the block runs (waiting up to `wait_seconds` for it); raise WorkspaceBusy if
    another run keeps it. On taking it, end the leftovers of a killed previous holder. A process of the run that
    holds it (same `key`, the holder's token inherited) enters without taking it; its holder has `"reentered"`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mine = _held_by_my_run(fd, path, key)
        if mine:
            yield {**mine, "reaped": 0, "reentered": True}
            return
        _acquire(fd, path, wait_seconds)
        reaped = end_leftovers(_read(path).get("token"))
        token = f"{os.getpid()}-{time.time_ns()}"
        holder = {"pid": os.getpid(), "what": what, "token": token, "key": key,
                  "since": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"), "reaped": reaped}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        before = os.environ.get(TOKEN)
        os.environ[TOKEN] = token  # inherited by dbt and every other child of this run
        try:
            yield holder
        finally:
            if before is None:
                os.environ.pop(TOKEN, None)
            else:
                os.environ[TOKEN] = before
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


def _held_by_my_run(fd: int, path: Path, key: str | None) -> dict | None:
    """The holder, if it is this process's run (its key, its token in our environment) and still holds the flock.
    A free flock with our run's name on it means the process that took it died: this leftover of it stops."""
    holder = _read(path)
    if key is None or holder.get("key") != key or holder.get("token") != os.environ.get(TOKEN):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return holder
    fcntl.flock(fd, fcntl.LOCK_UN)
    raise WorkspaceBusy(f"{path.parent}: {holder.get('what', 'the run')} that held it (PID {holder.get('pid', '?')}) "
                        "is gone: this process of it stops")


def _acquire(fd: int, path: Path, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _read(path)
                who = (f"{holder.get('what', 'another run')} (PID {holder.get('pid', '?')}, since "
                       f"{holder.get('since', '?')})") if holder else "another run"
                raise WorkspaceBusy(f"{path.parent} is in use by {who}: wait for it to finish, or stop it") from None
            time.sleep(0.5)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def end_leftovers(token: str | None, grace_seconds: float = 3.0) -> int:
    """End the processes a run with `token` left behind (SIGTERM, then SIGKILL); return how many there were."""
    if not token:
        return 0
    mine = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == mine:
            continue
        try:
            if proc.environ().get(TOKEN) == token:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    for proc in found:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(found, timeout=grace_seconds)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace_seconds)
    return len(found)
