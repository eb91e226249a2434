"""Every request's id, log line and metrics, in one pure ASGI middleware (the outermost).

The id is the caller's `X-Request-Id` when it is a plain token, else a new `req_…`; it goes
back in the `X-Request-Id` header of every answer and as `request_id` in every error
envelope, so a user's report and the server's log line meet. The log line names the route
template (`/v1/buckets/{bucket_id}/objects`), never the raw path (ids in it would make every
line unique), the namespace the request named, status and milliseconds — never a key or a
body.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assay.kit.ids import new_id
from assay.kit.logs import event
from assay.kit.metrics import observe_request

log = logging.getLogger("assay.http")

_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_QUIET = ("/healthz", "/readyz", "/metrics")  # polled by machines: logged at DEBUG


def request_id(scope: Scope) -> str | None:
    """The id `RequestLogMiddleware` gave this request."""
    state: dict[str, Any] = scope.get("state") or {}
    found = state.get("request_id")
    return found if isinstance(found, str) else None


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _given_id(scope) or new_id("req")
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        error_start: Message | None = None
        error_body: list[bytes] = []

        async def send_with_id(message: Message) -> None:
            nonlocal status, error_start
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [*message.get("headers", []), (b"x-request-id", rid.encode())]
                message = {**message, "headers": headers}
                if status >= 400 and _is_json(headers):
                    error_start = message  # held until the body is whole: it gains the id
                    return
            elif message["type"] == "http.response.body" and error_start is not None:
                error_body.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                start, body = _with_request_id(error_start, b"".join(error_body), rid)
                error_start = None
                await send(start)
                message = {"type": "http.response.body", "body": body}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started, rid)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float, rid: str) -> None:
        route = _route(scope)
        method = scope["method"]
        observe_request(method, route, status, seconds)
        level = logging.INFO
        if scope["path"].startswith(_QUIET):
            level = logging.DEBUG
        elif status >= 500:
            level = logging.ERROR
        if not log.isEnabledFor(level):  # the line's fields cost more than the check
            return
        event(
            log, "request", level=level, method=method, route=route, status=status,
            ms=round(seconds * 1000, 1), request_id=rid, namespace=_namespace(scope),
        )  # fmt: skip


def _given_id(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"x-request-id":
            text = bytes(value).decode("latin-1")
            return text if _TOKEN.fullmatch(text) else None
    return None


def _route(scope: Scope) -> str:
    """The matched route's template; one label for everything unmatched (bounded labels)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if scope["path"].startswith("/ui"):
        return "/ui"
    return "unmatched"


def _namespace(scope: Scope) -> str | None:
    params: dict[str, Any] = scope.get("path_params") or {}
    for name in ("namespace_id", "namespace", "namespace_identifier"):
        if isinstance(params.get(name), str):
            return str(params[name])
    for key, value in scope.get("headers", []):
        if key == b"x-namespace":
            return bytes(value).decode("latin-1")[:100]
    return None


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k == b"content-type" and v.startswith(b"application/json") for k, v in headers)


def _with_request_id(start: Message, body: bytes, rid: str) -> tuple[Message, bytes]:
    """An error envelope with `request_id` added (other JSON bodies pass unchanged)."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return start, body
    if not isinstance(envelope, dict) or envelope.get("success") is not False:
        return start, body
    envelope.setdefault("request_id", rid)
    body = json.dumps(envelope, separators=(",", ":")).encode("ascii")
    headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    return {**start, "headers": headers}, body
