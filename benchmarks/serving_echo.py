"""The framework's floor for benchmarks/serving_latency.py: a bare BentoML service that parses the same request and
returns a constant (2 workers, async API, access log and metrics off). With ECHO_TUNED=1 it gets the same runtime
fixes and tracing settings as the prediction API (serving/runtime.py), to show what they change in the framework
alone."""
from __future__ import annotations

import os

import bentoml

TUNED = os.environ.get("ECHO_TUNED") == "1"
if TUNED:
    from serving import runtime

    runtime.install()
TRACING = runtime.tracing_config(("/predict",)) if TUNED else {}

CONSTANT = [{"customer_id": "C0000000", "predicted_value": 1.0}]


@bentoml.service(name="echo", workers=2, logging={"access": {"enabled": False}}, metrics={"enabled": False},
                 http={"host": "127.0.0.1"}, **TRACING)
class Echo:
    def __init__(self) -> None:
        if TUNED:
            runtime.settle()

    @bentoml.api
    async def predict(self, customer_ids: list[str], reasons: bool = True) -> list[dict]:
        return CONSTANT
