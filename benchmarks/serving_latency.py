"""Latency and throughput of the prediction API next to its two floors, in one run, printed as JSON.

- ours:  `bentoml serve serving.service:ClvService` over the latest published clv_model (run `make materialize` first)
- echo:  a bare BentoML service returning a constant for the same request (benchmarks/serving_echo.py): the framework
- echo_tuned: the same with the API's runtime fixes (serving/runtime.py): what they change in the framework alone
- in_process: the same work without HTTP: the lookup /predict does, and the model itself (predict, explain)

Load comes from wrk (Debian: `apt-get install -y wrk`) on loopback, one client thread, each case bounded by
--seconds and --max-requests. Usage: python benchmarks/serving_latency.py [--seconds 5] [--max-requests 200000]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

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
        # a short warm-up, then the measured run
        subprocess.run(["wrk", "-t1", f"-c{concurrency}", "-d1s", "-s", str(Path(tmp) / "post.lua"), url],
                       env=env, capture_output=True, check=True)
        out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s",
                              "-s", str(Path(tmp) / "post.lua"), url], env=env, capture_output=True, text=True,
                             check=True).stdout
    raw = json.loads(next(line for line in out.splitlines() if line.startswith("WRK "))[4:])
    secs = raw["duration_us"] / 1e6
    return {"requests": raw["requests"], "req_per_s": round(raw["requests"] / secs, 1),
            "errors": raw["non_2xx"] + raw["socket_errors"],
            **{k.replace("_us", "_ms"): round(raw[k] / 1000, 2) for k in ("p50_us", "p95_us", "p99_us", "max_us")}}


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
    from ml.explain import explain
    from serving import runtime
    from serving.service import Version

    version = Version.open("clv_model:latest")
    runtime.settle()
    model, snap = version.served.model, version.served.snapshot
    one = (snap.features.iloc[:1].reset_index(drop=True), snap.sequences[:1])
    thousand = (snap.features.iloc[:1000].reset_index(drop=True), snap.sequences[:1000])
    return {
        "lookup_1_id": timed(lambda: version.answers.json(ids_1, True), 2000),
        "lookup_1000_ids": timed(lambda: version.answers.json(ids_1000, True), 200),
        "model_predict_1_row": timed(lambda: model.predict(*one), 50),
        "model_predict_1000_rows": timed(lambda: model.predict(*thousand), 10),
        "explain_1_row": timed(lambda: explain(model, *one), 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--max-requests", type=int, default=200_000)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("benchmarks/serving_latency.py needs wrk on PATH (Debian: apt-get install -y wrk)")
    from serving import store
    from ml.windows import CATEGORICAL
    from serving.schemas import NUMERIC_FEATURES

    if store.latest_tag() is None:
        raise SystemExit(f"no clv_model in {os.environ['BENTOML_HOME']}: run `make materialize` first")
    snapshot = store.load().snapshot
    ids_1 = [str(snapshot.customer_ids[0])]
    ids_1000 = [str(c) for c in snapshot.customer_ids[np.arange(1000) % len(snapshot)]]
    one = json.dumps({"customer_ids": ids_1}).encode()
    batch = json.dumps({"customer_ids": ids_1000}).encode()

    row = snapshot.features.iloc[0]
    feature_row = {k: (None if pd.isna(row[k]) else float(row[k])) for k in NUMERIC_FEATURES}
    feature_row.update({k: (None if pd.isna(row[k]) else str(row[k])) for k in CATEGORICAL})
    feature_row["weekly_activity"] = snapshot.sequences[0].tolist()
    features = json.dumps({"rows": [feature_row]}).encode()
    features_no_reasons = json.dumps({"rows": [{**feature_row, "reasons": False}]}).encode()

    cases = [("/predict", "1 id", one, 1), ("/predict", "1 id", one, 16), ("/predict", "1 id", one, 64),
             ("/predict", "1000 ids", batch, 4)]
    results = {"load_average_at_start": os.getloadavg(), "cpus": os.cpu_count(), "tool": "wrk -t1 (loopback)",
               "seconds_per_case": args.seconds, "servers": {"ours": {}, "echo": {}, "echo_tuned": {}}}
    # all servers up at once and each case run on them back to back, so a change in the machine's load hits all
    with server("serving.service:ClvService") as ours, server("benchmarks.serving_echo:Echo") as echo, \
            server("benchmarks.serving_echo:Echo", {"ECHO_TUNED": "1"}) as echo_tuned:
        for route, payload, body, c in cases:
            for name, url in [("ours", ours), ("echo", echo), ("echo_tuned", echo_tuned)]:
                results["servers"][name][f"{payload} @ c{c}"] = wrk(f"{url}{route}", body, c, args.seconds,
                                                                     args.max_requests)
        # the model runs per request here, adaptively batched across concurrent ones; reasons cost a model run
        # per feature group
        # (without reasons first: requests still queued when a case ends delay the next case)
        for label, body, c in [("1 row without reasons", features_no_reasons, 16), ("1 row", features, 1),
                               ("1 row", features, 16)]:
            results["servers"]["ours"][f"/predict_features {label} @ c{c}"] = wrk(
                f"{ours}/predict_features", body, c, args.seconds, args.max_requests)
    results["in_process"] = in_process(ids_1, ids_1000)

    ours, echo = results["servers"]["ours"], results["servers"]["echo"]
    results["goals"] = {
        "throughput_vs_echo_c16 (>= 0.8)": round(ours["1 id @ c16"]["req_per_s"] / echo["1 id @ c16"]["req_per_s"], 2),
        "errors (0)": sum(r["errors"] for r in ours.values()),
        "p50_ms_c1 (<= 2)": ours["1 id @ c1"]["p50_ms"],
        "p99_ms_c16 (< 25)": ours["1 id @ c16"]["p99_ms"],
        "predictions_per_s_batch (>= 50000)": round(ours["1000 ids @ c4"]["req_per_s"] * 1000),
    }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
