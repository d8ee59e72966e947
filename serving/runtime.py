"""What keeps a serving worker fast: where BentoML's ~100 ms p99 comes from, the two fixes, and the tracing cost.

Measured on the 2-core machine: the bare BentoML echo's slow requests coincide with full (generation 2) garbage
collections of 130-280 ms. Two things make them slow:

1. BentoML's TimeoutMiddleware (1.4.x) arms `loop.call_later(timeout, ...)` for every request and never cancels it,
   so each request's future, context and OpenTelemetry span stay alive for `traffic.timeout` seconds (60 by
   default): ~1,900 requests left ~20 live objects each behind. At 1,000 requests/s a worker carries about a
   million extra objects that every full collection walks. `TimeoutMiddleware` below keeps its behaviour (a 504
   when no response starts in time) without the lingering timer; `install()` puts it where BentoML builds its
   middleware stack.
2. The ~115,000 objects of the imported framework, torch and pandas are walked by every full collection too;
   `settle()` moves them to the permanent generation (gc.freeze) once the worker has loaded its model.

Separately, BentoML wraps every request in an OpenTelemetry span even with no exporter configured; that was half of
a /predict request's CPU (1,240 -> 2,500 requests/s at concurrency 16 without it). `tracing_config()` leaves the
given routes out of tracing unless CLV_TRACING=1 (set it with a tracing exporter in the BentoML configuration).
"""
from __future__ import annotations

import asyncio
import gc
import os
import threading
import typing as t

import torch
from threadpoolctl import threadpool_limits

from bentoml._internal.server.http import traffic


class TimeoutMiddleware:
    """BentoML's request timeout (a 504 when no response starts in time), with its timer cancelled when done."""

    def __init__(self, app, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        started = asyncio.get_running_loop().create_future()

        async def _send(message: t.MutableMapping[str, t.Any]) -> None:
            if not started.done():
                started.set_result(None)
            await send(message)

        request = asyncio.ensure_future(self.app(scope, receive, _send))
        # asyncio.wait cancels its own timer on return; a request that fails before responding ends the wait too
        done, _ = await asyncio.wait({started, request}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            request.cancel()
            await traffic.JSONResponse(
                {"error": f"Not able to process the request in {self.timeout} seconds"}, status_code=504,
            )(scope, receive, send)
            return
        await request


def tracing_config(routes: tuple[str, ...]) -> dict:
    """Service config keeping `routes` out of OpenTelemetry tracing, unless CLV_TRACING=1."""
    if os.environ.get("CLV_TRACING") == "1":
        return {}
    return {"tracing": {"excluded_urls": [f"{route}$" for route in routes]}}  # searched in the full URL


def install() -> None:
    """Use the fixed timeout middleware in the app BentoML builds in this process (call before it is built)."""
    traffic.TimeoutMiddleware = TimeoutMiddleware


def settle() -> None:
    """After loading: one torch thread per worker (parallelism comes from workers) and a frozen start-up heap."""
    torch.set_num_threads(1)
    gc.collect()
    gc.freeze()


_single = threading.local()


def single_threaded_here() -> None:
    """One OpenMP and BLAS thread for the model runs of this thread (the limit is per thread: BentoML runs a batch
    in a worker thread of its own). With two, scikit-learn's gradient boosting in each worker spins a second
    thread against the other worker's: a batch used ~30 % more CPU than its thread."""
    if not getattr(_single, "done", False):
        threadpool_limits(1)
        _single.done = True


def resettle() -> None:
    """After a new version replaced the old: free the old one (frozen objects are never collected), freeze again."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
