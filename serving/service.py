"""The prediction API: BentoML service over the latest `clv_model` in the model store.

POST /predict           {"customer_ids": [...], "reasons": true} -> one answer per id, in request order
POST /predict_features  {"rows": [{feature: value, ..., "weekly_activity": [[...], ...]}]} -> one answer per row
An answer: expected value over the horizon, return probability, value interval (p10 / p50 / p90), lifecycle stage,
the top reasons and the model version. /livez, /readyz (ready once a model is loaded) and /metrics come with BentoML.

/predict serves the answers computed once per published version (see serving/scores.py); /predict_features runs
the model, adaptively batched across concurrent requests. A newly published version is picked up within
CLV_REFRESH_SECONDS without a restart. CLV_API_KEY, when set, protects both routes; customer ids are logged only
with CLV_LOG_CUSTOMER_IDS=1.
"""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

import bentoml
import numpy as np
from bentoml.exceptions import ServiceUnavailable
from starlette.responses import JSONResponse, Response

from serving import batch, features, gate, lifecycle, runtime, scores, store
from serving.schemas import (MAX_ROWS, CustomerFeatures, FeaturesRequest, Prediction, PredictRequest,
                             expect_sequence_weeks)

logger = logging.getLogger("bentoml.clv_service")  # under "bentoml": BentoML configures its level and handlers
REFRESH_SECONDS = float(os.environ.get("CLV_REFRESH_SECONDS", "2"))
LOG_CUSTOMER_IDS = os.environ.get("CLV_LOG_CUSTOMER_IDS") == "1"
ROUTES = ("/predict", "/predict_features")
NOT_READY = "no clv_model version is published yet: materialize the pipeline (make materialize)"

runtime.install()
logging.getLogger("bentoml._internal.server.http_app").addFilter(gate.QuietRejections())


@dataclass(frozen=True)
class Version:
    """One published version as served: the model, its snapshot and the snapshot's ready answers."""

    served: store.Served
    answers: scores.Answers

    @classmethod
    def open(cls, tag: str) -> "Version":
        served = store.load(tag)
        table = scores.read(served.path)
        if table is None:  # published before answers were stored with the version
            with store.single_threaded_torch():
                table = scores.score(served.model, served.snapshot)
        return cls(served, scores.Answers.build(table, served.version))


def _error(status: int, error: str, detail: str | None = None) -> JSONResponse:
    return JSONResponse({"error": error, **({"detail": detail} if detail else {})}, status_code=status)


@bentoml.service(
    name="clv_service",
    workers=int(os.environ.get("CLV_API_WORKERS", "2")),
    traffic={"timeout": 30},
    http={"host": "127.0.0.1", "port": 3001},
    logging={"access": {"enabled": os.environ.get("CLV_ACCESS_LOG") == "1"}},  # costs ~15 % of throughput
    **runtime.tracing_config(ROUTES),
)
class ClvService:
    def __init__(self) -> None:
        self.current: Version | None = None
        self._failed: str | None = None  # a version that would not load is not retried until a newer one appears
        self._watcher: asyncio.Task | None = None
        latest = store.latest_version(None)
        if latest is None:
            logger.warning(NOT_READY)
        elif loaded := self._open(latest):
            self._switch(loaded)
        runtime.settle()

    def _open(self, version: str) -> Version | None:
        try:
            return Version.open(f"{store.MODEL_NAME}:{version}")
        except Exception:
            self._failed = version
            logger.exception("could not load clv_model:%s; %s", version,
                             "still serving the previous version" if self.current else "not ready")
            return None

    def _switch(self, version: Version) -> None:
        expect_sequence_weeks(version.served.snapshot.sequences.shape[1])
        self.current = version  # requests in flight finish with the version they started with
        logger.info("serving %s: %d customers", version.served.tag, len(version.answers))

    @bentoml.on_startup
    async def _start_watching(self) -> None:
        self._watcher = asyncio.create_task(self._watch())

    @bentoml.on_shutdown
    async def _stop_watching(self) -> None:
        if self._watcher:
            self._watcher.cancel()

    async def _watch(self) -> None:
        """Every REFRESH_SECONDS: one small file read; a new version loads in a thread, then replaces the old one."""
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                current = self.current
                latest = store.latest_version(current.served if current else None)
                if latest and latest != self._failed and (current is None or latest != current.served.version):
                    if loaded := await asyncio.to_thread(self._open, latest):
                        self._switch(loaded)
                        runtime.resettle()
            except Exception:  # the store moved or vanished: keep serving, keep watching
                logger.exception("could not check for a new clv_model version")

    def __is_ready__(self) -> bool:
        return self.current is not None

    @bentoml.api(input_spec=PredictRequest)
    async def predict(self, customer_ids: list[str], reasons: bool = True) -> list[Prediction]:
        """Answers for customers of the scored snapshot, in request order."""
        version = self.current
        if version is None:
            return _error(503, NOT_READY)
        if LOG_CUSTOMER_IDS:
            logger.info("predict: %s", customer_ids)
        unknown = version.answers.unknown(customer_ids)
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            return _error(404, f"unknown customer id(s): {shown}",
                          f"{len(unknown)} of {len(customer_ids)} ids are not in the scored snapshot of "
                          f"{version.served.tag}; use /predict_features for customers without a score")
        return Response(version.answers.json(customer_ids, reasons), media_type="application/json")

    # a batch is one model run on its rows and, for those asking for reasons, a copy of them per feature group
    # (serving/batch.py): ~14 model rows a row, 2.5 ms of CPU a row for the stacked ensemble (0.5 ms without reasons,
    # ~60 ms a run whatever its size). Requests queue behind one batch and join the next; beyond 10 s they get a 503
    @bentoml.api(input_spec=FeaturesRequest, batchable=True, max_batch_size=MAX_ROWS, max_latency_ms=10_000)
    def predict_features(self, rows: list[CustomerFeatures]) -> list[Prediction]:
        """Answers for feature rows (customers not in the snapshot): the model runs on them, batched across requests."""
        version = self.current
        if version is None:
            raise ServiceUnavailable(NOT_READY)
        if LOG_CUSTOMER_IDS:
            logger.info("predict_features: %s", [r.customer_id for r in rows])
        served = version.served
        runtime.single_threaded_here()
        frame = features.frame(rows)
        sequences = features.sequences(rows, served.snapshot.sequences.shape[1])
        asked = np.flatnonzero([r.reasons for r in rows])
        pred, why = batch.predict(served.model, frame, sequences, asked, scores.TOP_REASONS, features.events(rows))
        stages = lifecycle.stages(frame)
        return [scores.row(r.customer_id, p, stage, served.version, reasons)
                for r, p, stage, reasons in zip(rows, pred.to_dict(orient="records"), stages, why)]


ClvService.add_asgi_middleware(gate.RequestGate, paths=ROUTES)
