"""What stands between a caller and the prediction routes: the API key, the body's type and size, and error bodies.

Every 4xx of a prediction route leaves as `{"error": "<one line naming what and where>", "detail": "..."}`;
BentoML's own validation answer (a list of pydantic errors) is rewritten to it. The OpenAPI document (/docs.json)
is completed to say so: the body is required, these statuses are documented, the key is declared.
"""
from __future__ import annotations

import hmac
import json
import logging
import os

from pydantic import ValidationError

from serving import openapi

API_KEY_ENV = "CLV_API_KEY"
MAX_BODY_BYTES = 8 * 1024 * 1024
DOCS_PATH = "/docs.json"
STATUSES = {
    "400": "Invalid request: the first problem with its place in `error`, all of them in `detail`",
    "401": f"Missing or wrong API key (only when {API_KEY_ENV} is set)",
    "404": "Unknown customer id(s)",
    "413": f"Body larger than {MAX_BODY_BYTES:,} bytes",
    "415": "Body not JSON",
    "503": "No model version loaded yet, or the batch queue is full",
}


def _error_json(error: str, detail: str | None = None) -> bytes:
    return json.dumps({"error": error, **({"detail": detail} if detail else {})}).encode()


def _response(status: int, error: str, detail: str | None = None, headers: list | None = None):
    body = _error_json(error, detail)
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         *(headers or [])]}
    return start, {"type": "http.response.body", "body": body}


class RequestGate:
    """ASGI middleware for the prediction routes (`paths`) and the OpenAPI document; health and metrics pass."""

    def __init__(self, app, paths: tuple[str, ...]) -> None:
        self.app = app
        self.paths = frozenset(paths)
        key = os.environ.get(API_KEY_ENV, "")
        self.key = key.encode() if key else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == DOCS_PATH:
            return await self.app(scope, receive, _rewritten(send, self._document))
        if scope["type"] != "http" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        refusal = self._refusal(headers)
        if refusal:
            for message in _response(*refusal):
                await send(message)
            return
        if b"content-length" not in headers:
            body = await _whole_body(receive)
            if body is None:
                for message in _response(413, f"the body is larger than {MAX_BODY_BYTES:,} bytes"):
                    await send(message)
                return
            receive = _replay(body)
        await self.app(scope, receive, _error_bodies(send))

    def _document(self, status: int, body: bytes) -> bytes:
        return json.dumps(openapi.complete(json.loads(body), self.paths, STATUSES, self.key is not None)).encode()

    def _refusal(self, headers: dict[bytes, bytes]) -> tuple | None:
        if self.key is not None:
            given = headers.get(b"x-api-key") or headers.get(b"authorization", b"").removeprefix(b"Bearer ")
            if not hmac.compare_digest(given, self.key):
                return (401, f"missing or wrong API key: send the key of {API_KEY_ENV} as the X-API-Key header "
                             "or as Authorization: Bearer <key>",
                        None, [(b"www-authenticate", b"Bearer")])
        media = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if media != b"application/json":
            return 415, f"the body must be JSON (content-type application/json), got {media.decode('latin-1')!r}"
        length = headers.get(b"content-length", b"0").strip()
        if not length.isdigit():
            return 400, "content-length must be a number of bytes"
        if int(length) > MAX_BODY_BYTES:
            return 413, f"the body is {int(length):,} bytes; at most {MAX_BODY_BYTES:,}"
        return None


async def _whole_body(receive) -> bytes | None:
    """A chunked body (no content-length), read up to the limit; None when it is larger."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > MAX_BODY_BYTES:
            return None
    return b"".join(chunks)


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


UNAVAILABLE = "unavailable: no model version is loaded yet (see /readyz) or the batch queue is full; retry later"


def _error_bodies(send):
    """A 4xx or 503 response's body rewritten to the documented error shape."""

    def rewrite(status: int, body: bytes) -> bytes:
        error, detail = _one_line(body)
        if status == 503 and error.startswith("An unexpected error"):  # BentoML hides the reason of a 5xx
            error = UNAVAILABLE
        return _error_json(error, detail)

    return _rewritten(send, rewrite, statuses={*range(400, 500), 503})


def _rewritten(send, rewrite, statuses=range(200, 300)):
    """Buffers a response whose status is in `statuses` and sends `rewrite(status, body)` instead."""
    held: dict = {}
    chunks: list[bytes] = []

    async def inner(message) -> None:
        if message["type"] == "http.response.start" and message["status"] in statuses:
            held["start"] = message
            return
        if "start" not in held:
            return await send(message)
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = rewrite(held["start"]["status"], b"".join(chunks))
        headers = [(k, v) for k, v in held["start"].get("headers", []) if k.lower() != b"content-length"]
        await send({**held["start"], "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return inner


def _one_line(body: bytes) -> tuple[str, str | None]:
    """BentoML's error bodies -> (error, detail): the first problem with its place, then all of them."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip() or "bad request", None
    if isinstance(data, list) and data and isinstance(data[0], dict):  # BentoMLException: [{"error": ...}]
        data = data[0]
    if not isinstance(data, dict):
        return str(data), None
    problems = data.get("detail")
    if isinstance(problems, list) and problems:  # pydantic errors
        lines = [f"{_place(p.get('loc', ()))}: {p.get('msg', 'invalid')}" for p in problems]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        return lines[0] + more, ("; ".join(lines) if more else None)
    detail = problems if isinstance(problems, str) else None
    return str(data.get("error") or "bad request"), detail


def _place(loc) -> str:
    """("rows", 3, "n_orders") -> "rows[3].n_orders"; an empty place is the body itself."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


class QuietRejections(logging.Filter):
    """BentoML logs a rejected request with its traceback, whose pydantic message quotes the input (customer ids).
    Keep one line with the route and the count of problems instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            path = record.args[0] if isinstance(record.args, tuple) and record.args else "request"
            record.msg, record.args = "%s: rejected, %d invalid field(s)", (path, exc.error_count())
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
