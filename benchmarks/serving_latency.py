"""Latency and throughput of the prediction API next to its two floors, in one run, printed as JSON.

- ours:  `bentoml serve serving.service:ClvService` over the latest published clv_model (run `make materialize` first)
- echo:  a bare BentoML service returning a constant for the same request (benchmarks/serving_echo.py): the framework
- echo_tuned: the same with the API's runtime fixes (serving/runtime.py): what they change in the framework alone
- in_process: the same work without HTTP: the lookup /predict does, and the model itself (predict, explain)

/predict_features runs with 1 and 100 feature rows a request (distinct snapshot customers), for --feature-seconds a
case; its cases report rows/s. Every case also reports the server's CPU milliseconds per request (and per row): on a
machine shared with other work that figure holds where requests per second do not.
Load comes from wrk (Debian: `apt-get install -y wrk`) on loopback, one client thread, each case warmed up, then
bounded by --seconds and --max-requests; without wrk, from an httpx client in this process (it shares the CPUs, so it
measures less than the server can do). Usage:
python benchmarks/serving_latency.py [--seconds 5] [--feature-seconds 20] [--max-requests 200000] [--ours-only]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("BENTOML_HOME", str(REPO / ".clv" / "bentoml"))

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("WRK_BODY_FILE"), "r"); wrk.body = f:read("*a"); f:close()
local limit = tonumber(os.getenv("WRK_MAX_REQUESTS"))
local seen = 0
response = function(status, headers, body)
  seen = seen + 1
  if seen >= limit then wrk.thread:stop() end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PROCESSES: dict[str, psutil.Process] = {}  # server url -> its `bentoml serve` process


def cpu_seconds(url: str) -> float:
    """User + system CPU time of a server's processes (the arbiter and its workers) so far."""
    root = PROCESSES[url]
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


@contextmanager
def server(target: str, env: dict | None = None):
    """`bentoml serve target` on a free loopback port until /readyz answers; stopped on exit."""
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "bentoml"), "serve", target, "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    PROCESSES[url] = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                raise SystemExit(f"{target} exited:\n{log.read().decode()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise SystemExit(f"{target} was not ready in 180 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wrk(url: str, body: bytes, concurrency: int, seconds: int, max_requests: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "post.lua").write_text(WRK_SCRIPT)
        (Path(tmp) / "body.json").write_bytes(body)
        env = {**os.environ, "WRK_BODY_FILE": str(Path(tmp) / "body.json"), "WRK_MAX_REQUESTS": str(max_requests)}
        out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s",
                              "-s", str(Path(tmp) / "post.lua"), url], env=env, capture_output=True, text=True,
                             check=True).stdout
    raw = json.loads(next(line for line in out.splitlines() if line.startswith("WRK "))[4:])
    secs = raw["duration_us"] / 1e6
    return {"requests": raw["requests"], "req_per_s": round(raw["requests"] / secs, 1),
            "errors": raw["non_2xx"] + raw["socket_errors"],
            **{k.replace("_us", "_ms"): round(raw[k] / 1000, 2) for k in ("p50_us", "p95_us", "p99_us", "max_us")}}


def httpx_load(url: str, body: bytes, concurrency: int, seconds: int, max_requests: int) -> dict:
    """wrk's figures from `concurrency` httpx connections in this process (the fallback without wrk)."""

    async def run() -> tuple[list[float], int, float]:
        latencies, errors, stop = [], 0, time.monotonic() + seconds
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            async def worker():
                nonlocal errors
                while time.monotonic() < stop and len(latencies) < max_requests:
                    t = time.perf_counter()
                    try:
                        ok = (await client.post(url, content=body, headers={"content-type": "application/json"})
                              ).is_success
                    except httpx.HTTPError:
                        ok = False
                    latencies.append(time.perf_counter() - t)
                    errors += not ok
            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return latencies, errors, time.perf_counter() - start

    latencies, errors, secs = asyncio.run(run())
    ms = np.array(latencies) * 1000
    return {"requests": len(ms), "req_per_s": round(len(ms) / secs, 1), "errors": errors,
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)},
            "max_ms": round(float(ms.max()), 2)}


def measure(load, server_url: str, route: str, body: bytes, concurrency: int, seconds: int,
            max_requests: int) -> dict:
    """One case: warmed up, then `load`'s figures and the server's CPU milliseconds per request over the run (a
    figure that holds on a machine shared with other work, where requests per second do not)."""
    url = f"{server_url}{route}"
    asyncio.run(_warm_up(url, body, concurrency))
    before = cpu_seconds(server_url)
    got = load(url, body, concurrency, seconds, max_requests)
    got["server_cpu_ms_per_request"] = round((cpu_seconds(server_url) - before) * 1000 / max(got["requests"], 1), 3)
    return got


async def _warm_up(url: str, body: bytes, concurrency: int) -> None:
    """`concurrency` requests at once, answered before the measured run starts (a warm-up cut short would leave
    queued model runs behind that slow the measured run down)."""
    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(client.post(url, content=body, headers={"content-type": "application/json"})
                               for _ in range(concurrency)))


def timed(fn, n: int) -> dict:
    """p50 / p95 / p99 of n in-process calls, after a few warm-up calls."""
    for _ in range(min(5, n)):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    return {"calls": n, **{f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)},
            "calls_per_s": round(n / (ms.sum() / 1000), 1)}


def in_process(ids_1: list[str], ids_1000: list[str]) -> dict:
    from ml.evaluation.explain import explain
    from serving import batch, runtime
    from serving.service import Version

    version = Version.open("clv_model:latest")
    runtime.settle()
    runtime.single_threaded_here()
    model, snap = version.served.model, version.served.snapshot
    one = (snap.features.iloc[:1].reset_index(drop=True), snap.sequences[:1])
    hundred = (snap.features.iloc[:100].reset_index(drop=True), snap.sequences[:100])
    thousand = (snap.features.iloc[:1000].reset_index(drop=True), snap.sequences[:1000])
    return {
        "lookup_1_id": timed(lambda: version.answers.json(ids_1, True), 2000),
        "lookup_1000_ids": timed(lambda: version.answers.json(ids_1000, True), 200),
        "model_predict_1_row": timed(lambda: model.predict(*one), 50),
        "model_predict_1000_rows": timed(lambda: model.predict(*thousand), 10),
        "explain_1_row": timed(lambda: explain(model, *one), 5),
        # what /predict_features runs on a batch: the rows and a copy per feature group in one model run
        "one_run_100_rows_with_reasons": timed(lambda: batch.predict(model, *hundred, np.arange(100), 3), 5),
    }


def feature_rows(snapshot, n: int) -> list[dict]:
    """The first n snapshot customers as /predict_features rows."""
    from ml.data.windows import CATEGORICAL
    from serving.schemas import NUMERIC_FEATURES

    rows = []
    for i in range(n):
        row = snapshot.features.iloc[i % len(snapshot)]
        out = {k: (None if pd.isna(row[k]) else float(row[k])) for k in NUMERIC_FEATURES}
        out.update({k: (None if pd.isna(row[k]) else str(row[k])) for k in CATEGORICAL})
        out["weekly_activity"] = snapshot.sequences[i % len(snapshot)].tolist()
        rows.append(out)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--feature-seconds", type=int, default=20,
                        help="per /predict_features case: a batch of 1,000 rows with reasons takes seconds")
    parser.add_argument("--ours-only", action="store_true", help="the API's cases only: no echo servers")
    args = parser.parse_args()
    load, tool = (wrk, "wrk -t1 (loopback)") if shutil.which("wrk") else (httpx_load, "httpx in process (no wrk)")
    from serving import store

    if store.latest_tag() is None:
        raise SystemExit(f"no clv_model in {os.environ['BENTOML_HOME']}: run `make materialize` first")
    served = store.load()
    snapshot = served.snapshot
    ids_1 = [str(snapshot.customer_ids[0])]
    ids_1000 = [str(c) for c in snapshot.customer_ids[np.arange(1000) % len(snapshot)]]
    one = json.dumps({"customer_ids": ids_1}).encode()
    batch = json.dumps({"customer_ids": ids_1000}).encode()
    rows_100 = feature_rows(snapshot, 100)

    def features(rows: list[dict], reasons: bool = True) -> bytes:
        return json.dumps({"rows": rows if reasons else [{**r, "reasons": False} for r in rows]}).encode()

    cases = [("/predict", "1 id", one, 1), ("/predict", "1 id", one, 16), ("/predict", "1 id", one, 64),
             ("/predict", "1000 ids", batch, 4)]
    # the model runs once per batch here, adaptively batched across concurrent requests; reasons add to that run a
    # copy of the rows per feature group (~14 model rows a row). Without reasons first: requests still queued when a
    # case ends delay the next case
    feature_cases = [("1 row without reasons", features(rows_100[:1], False), 1, 16),
                     ("1 row", features(rows_100[:1]), 1, 1), ("1 row", features(rows_100[:1]), 1, 16),
                     ("100 rows without reasons", features(rows_100, False), 100, 16),
                     ("100 rows", features(rows_100), 100, 16)]
    servers = {"ours": {}} if args.ours_only else {"ours": {}, "echo": {}, "echo_tuned": {}}
    results = {"load_average_at_start": os.getloadavg(), "cpus": os.cpu_count(), "tool": tool,
               "seconds_per_case": args.seconds, "model": f"{type(served.model).__name__} ({served.model.name})",
               "servers": servers}
    del served
    # all servers up at once and each case run on them back to back, so a change in the machine's load hits all
    with ExitStack() as stack:
        urls = {"ours": stack.enter_context(server("serving.service:ClvService"))}
        if not args.ours_only:
            urls["echo"] = stack.enter_context(server("benchmarks.serving_echo:Echo"))
            urls["echo_tuned"] = stack.enter_context(server("benchmarks.serving_echo:Echo", {"ECHO_TUNED": "1"}))
        for route, payload, body, c in cases:
            for name, url in urls.items():
                servers[name][f"{payload} @ c{c}"] = measure(load, url, route, body, c, args.seconds,
                                                             args.max_requests)
        for label, body, rows, c in feature_cases:
            got = measure(load, urls["ours"], "/predict_features", body, c, args.feature_seconds, args.max_requests)
            servers["ours"][f"/predict_features {label} @ c{c}"] = {
                "rows_per_s": round(got["req_per_s"] * rows),
                "server_cpu_ms_per_row": round(got["server_cpu_ms_per_request"] / rows, 3), **got}
    if not args.ours_only:
        results["in_process"] = in_process(ids_1, ids_1000)

    ours = servers["ours"]
    results["goals"] = {
        "errors (0)": sum(r["errors"] for r in ours.values()),
        "p50_ms_c1 (<= 2)": ours["1 id @ c1"]["p50_ms"],
        "p99_ms_c16 (< 25)": ours["1 id @ c16"]["p99_ms"],
        "predictions_per_s_batch (>= 50000)": round(ours["1000 ids @ c4"]["req_per_s"] * 1000),
        "predict_features_rows_per_s_c16 (>= 2000)": ours["/predict_features 100 rows @ c16"]["rows_per_s"],
        "predict_features_rows_per_s_c16_without_reasons": ours["/predict_features 100 rows without reasons @ c16"][
            "rows_per_s"],
    }
    if not args.ours_only:
        echo = servers["echo"]
        results["goals"]["throughput_vs_echo_c16 (>= 0.8)"] = round(
            ours["1 id @ c16"]["req_per_s"] / echo["1 id @ c16"]["req_per_s"], 2)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
