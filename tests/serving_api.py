"""Helpers for the serving tests: a real `bentoml serve` on loopback, a private copy of a model store, the pins.

`python -m tests.serving_api requirements > serving/requirements.txt` regenerates the bento's pinned requirements.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
BENTOML = Path(sys.executable).parent / "bentoml"
# what the serving code imports (serving/, and the ml/ modules it reads: loading a model registers every kind of the
# zoo, which use scikit-learn and lifetimes)
SERVING_DEPENDENCIES = ["bentoml", "torch", "numpy", "pandas", "pyarrow", "duckdb", "PyYAML", "scikit-learn",
                        "Lifetimes"]


def same_answers(got: list[dict], want: list[dict], version: bool = True) -> bool:
    """Equal answers; numbers to 1e-9 (an ensemble's random forest sums its trees in thread order, so a recomputed
    prediction may differ in the last bit). `version=False` ignores model_version."""
    import pytest

    def numbers_approx(value):
        if isinstance(value, float):
            return pytest.approx(value, rel=1e-9, abs=1e-12)
        if isinstance(value, list):
            return [numbers_approx(v) for v in value]
        if isinstance(value, dict):
            return {k: numbers_approx(v) for k, v in value.items() if version or k != "model_version"}
        return value

    return [numbers_approx(a) for a in want] == [{k: v for k, v in a.items() if version or k != "model_version"}
                                                  for a in got]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TEST_KEY = "test-api-key"  # the shared test server runs with CLV_API_KEY set to this


class Api:
    def __init__(self, url: str, log: Path, headers: dict[str, str], home: Path):
        self.url, self.log, self.headers, self.home = url, log, headers, home

    def post(self, route: str, json=None, **kwargs) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.post(f"{self.url}{route}", json=json, headers=headers, timeout=60, **kwargs)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_api(target: str, bentoml_home: Path, log: Path, env: dict[str, str] | None = None,
                cwd: Path = REPO, headers: dict[str, str] | None = None, ready_s: float = 180,
                ready_path: str = "/readyz"):
    """`bentoml serve target --port N` (host left to the service's default) until `ready_path` answers 200."""
    port = free_port()
    environment = {**os.environ, "BENTOML_HOME": str(bentoml_home), **(env or {})}
    with open(log, "w") as out:
        proc = subprocess.Popen([str(BENTOML), "serve", target, "--port", str(port)], cwd=cwd, env=environment,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}{ready_path}", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the prediction API was not ready in {ready_s:.0f} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield Api(url, log, headers or {}, Path(bentoml_home))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


_shared: dict = {}


def shared_api(request, tmp_path_factory) -> Api:
    """One development server for the serving test modules (it starts in ~15 s): 2 workers, an API key, a 1 s
    refresh, over a private copy of the session's model store (`clean_shop` must have published a version)."""
    if "api" not in _shared:
        stack = ExitStack()
        folder = tmp_path_factory.mktemp("api")
        home = copy_store(Path(os.environ["BENTOML_HOME"]), folder / "bentoml")
        _shared["api"] = stack.enter_context(running_api(
            "serving.service:ClvService", home, folder / "server.log",
            env={"CLV_API_KEY": TEST_KEY, "CLV_REFRESH_SECONDS": "1"}, headers={"X-API-Key": TEST_KEY}))
        _shared["stack"] = stack
    request.addfinalizer(_shared["stack"].close)
    return _shared["api"]


def copy_store(bentoml_home: Path, to: Path) -> Path:
    """A private model store with the same versions, so a test can publish without touching the session's."""
    shutil.copytree(Path(bentoml_home) / "models", to / "models")
    return to


def publish_copy(bentoml_home: Path, into: Path | None = None) -> str:
    """Publish the latest version's model and snapshot again (into another store if given), from another process,
    as the pipeline does."""
    source = Path(bentoml_home) / "models" / "clv_model"
    version = source / (source / "latest").read_text().strip()
    code = ("import sys; from serving import store; from ml.data.windows import read_window; "
            "print(store.publish(sys.argv[1] + '/model', read_window(sys.argv[1] + '/snapshot'), {'note': 'test'}))")
    out = subprocess.run([sys.executable, "-c", code, str(version)], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "BENTOML_HOME": str(into or bentoml_home)}, check=True)
    return out.stdout.strip().splitlines()[-1]


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> dict[str, str]:
    """requirements.lock as canonical name -> 'Name==version'."""
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            pins[_canon(line.split("==")[0])] = line
    return pins


def serving_requirements() -> list[str]:
    """The serving dependencies and everything they require, pinned as in requirements.lock."""
    from packaging.requirements import Requirement

    pins, seen, todo = lock_pins(), set(), [_canon(d) for d in SERVING_DEPENDENCIES]
    while todo:
        name = todo.pop()
        if name in seen or name not in pins:
            continue
        seen.add(name)
        for spec in importlib.metadata.requires(name) or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_canon(req.name))
    return sorted((pins[n] for n in seen), key=str.lower)


if __name__ == "__main__" and sys.argv[1:] == ["requirements"]:
    print("# The prediction API's dependencies (tests/serving_api.py SERVING_DEPENDENCIES) and what they require, pinned")
    print("# as in requirements.lock. Regenerate: python -m tests.serving_api requirements > serving/requirements.txt")
    print("\n".join(serving_requirements()))
