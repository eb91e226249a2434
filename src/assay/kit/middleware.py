"""Pure ASGI middleware: the request-body size limit (413 before the body is read whole) and
the last-resort 500 that keeps the connection open."""

from __future__ import annotations

import errno
import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assay.kit.engines import database_unavailable
from assay.kit.ids import new_id
from assay.kit.requestlog import request_id as request_id_of

log = logging.getLogger("assay")


async def send_error(
    send: Send,
    status: int,
    type_: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer with the API's error envelope from inside middleware."""
    error: dict[str, Any] = {"type": type_, "message": message}
    if details is not None:
        error["details"] = details
    body = json.dumps({"success": False, "status": status, "error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class InternalErrorMiddleware:
    """Answers an unexpected exception with the 500 envelope inside the app.

    Starlette's outermost handler re-raises after answering, and uvicorn then closes the
    connection, resetting the next request a keep-alive client already sent on it. Here the
    error ends with the answer. A failure after the answer started (a broken download stream)
    still propagates: the client must see the body cut short.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            return  # the client went away mid-request: no one to answer, nothing went wrong
        except Exception as exc:
            if started:
                raise
            if disk_full(exc):
                log.error("disk full", extra={"fields": {"method": scope["method"],
                                                          "path": scope["path"]}})  # fmt: skip
                await send_error(
                    send, 507, "InsufficientStorageError",
                    "the server's storage is full; nothing of this request was stored",
                )  # fmt: skip
                return
            if database_unavailable(exc):
                log.warning("database unavailable in %s %s: %s", scope["method"], scope["path"],
                            str(exc).splitlines()[0])  # fmt: skip
                await send_error(
                    send, 503, "ServiceUnavailableError",
                    "the database is unavailable right now; retry shortly",
                    headers=[(b"retry-after", b"1")],
                )  # fmt: skip
                return
            # The request's id ties the answer to this log line (and to the request's own).
            request_id = request_id_of(scope) or new_id("req")
            log.exception(
                "unhandled error",
                extra={"fields": {"method": scope["method"], "path": scope["path"],
                                  "request_id": request_id}},
            )  # fmt: skip
            await send_error(
                send, 500, "InternalError", "internal error", {"request_id": request_id}
            )


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or one it grouped or was raised from) is a full disk or quota."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(disk_full(e) for e in exc.exceptions)
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and disk_full(cause)


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes`: by Content-Length at once, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await send_error(send, 413, "PayloadTooLargeError", self._message())
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"request body is larger than the limit of {self.max_bytes} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def header(scope: Scope, name: bytes) -> str | None:
    """One request header's value, decoded, from an ASGI scope."""
    headers: list[Any] = scope.get("headers", [])
    for key, value in headers:
        if key == name:
            return bytes(value).decode("latin-1")
    return None
