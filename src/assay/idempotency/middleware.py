"""`Idempotency-Key` on every POST: the same key and body replay the first answer for 24 h.

The same key with another body is a 409, and so is a key whose first request is still running
(with `Retry-After`). A running request's claim is a lease its process renews; a process killed
mid-request stops renewing it, and once it runs out the next request with the key runs afresh,
unless some of the first one's work had committed: each of its write transactions marks the
claim "carried out" as it commits, and such a claim answers a 409 saying the answer was lost
rather than doing the work twice.
Only answers below 400 are kept: a refused request may be corrected and sent again. A stored
answer is replayed only to a credential that is still valid, and answers carrying secrets (new
API keys) are never stored: those routes are exempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assay.auth.service import hash_secret, lookup_principal, parse_bearer
from assay.errors import AppError
from assay.idempotency.repository import IdempotencyRepository
from assay.kit.db import Database, write_marker
from assay.kit.middleware import header, send_error

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255
# Their answers hold secrets (API keys, webhook signing secrets), which are never stored.
EXEMPT_PREFIXES = ("/v1/keys", "/v1/webhooks", "/v1/organizations/webhooks")
# How long a running request's claim holds without renewal; renewed every third of it.
CLAIM_LEASE_S = 30.0


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        db: Callable[[], Database],
        ttl_s: int,
        lease_s: float = CLAIM_LEASE_S,
    ) -> None:
        self.app = app
        self.db = db
        self.ttl_s = ttl_s
        self.lease_s = lease_s
        self._calls = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if key is None or scope["method"] != "POST" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        if not key or len(key) > MAX_KEY_LENGTH:
            await send_error(
                send, 400, "BadRequestError", "Idempotency-Key must be 1-255 characters"
            )
            return
        try:
            body = await _read_body(receive)
        except HTTPException as exc:  # the body limit, raised while streaming
            await send_error(send, exc.status_code, "PayloadTooLargeError", str(exc.detail))
            return
        credential = header(scope, b"authorization") or ""
        scope_key = _sha(f"{credential}\n{key}".encode())
        namespace = header(scope, b"x-namespace") or ""
        query = scope.get("query_string", b"").decode()
        target = f"{scope['method']} {scope['path']}?{query} {namespace}"
        request_hash = _sha(target.encode() + b"\n" + body)
        try:
            await self._run(scope, body, send, scope_key, request_hash, credential)
        except AppError as exc:
            retry_after = getattr(exc, "retry_after_s", None)
            headers = None if retry_after is None else [(b"retry-after", str(retry_after).encode())]
            await send_error(send, exc.status, exc.type, exc.message, headers=headers)

    async def _run(
        self,
        scope: Scope,
        body: bytes,
        send: Send,
        scope_key: str,
        request_hash: str,
        credential: str,
    ) -> None:
        db = self.db()
        repo = IdempotencyRepository
        record = await db.read(lambda s: repo(s).find(scope_key, self.ttl_s))
        if record is not None and record.request_hash != request_hash:
            await send_error(
                send,
                409,
                "ConflictError",
                "Idempotency-Key was already used with another request body",
            )
            return
        if record is not None and record.status_code > 0:
            if await self._still_valid(credential):
                await _replay(send, record.status_code, record.content_type, record.body)
            else:  # a revoked key: let the app answer (401), store nothing
                await self.app(scope, _replay_receive(body), send)
            return

        def claim(s: Any) -> None:
            if next(self._calls) % 1000 == 0:
                repo(s).purge_expired(self.ttl_s)
            repo(s).claim(scope_key, request_hash, self.ttl_s, self.lease_s)

        await db.write(claim)
        captured: dict[str, Any] = {"status": 500, "type": "application/json", "body": bytearray()}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name == b"content-type":
                        captured["type"] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        renewal = asyncio.create_task(self._renew(db, scope_key))  # not marked: made first
        marking = write_marker.set(lambda s: repo(s).mark_carried_out(scope_key))
        try:
            await self.app(scope, _replay_receive(body), capture)
        finally:
            write_marker.reset(marking)
            renewal.cancel()
            status, data = captured["status"], bytes(captured["body"])
            if status < 400:
                await db.write(
                    lambda s: repo(s).complete(scope_key, status, captured["type"], data)
                )
            else:
                await db.write(lambda s: repo(s).release(scope_key))

    async def _renew(self, db: Database, scope_key: str) -> None:
        """Keep the claim alive while the request runs (most finish before the first renewal)."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await db.write(lambda s: IdempotencyRepository(s).renew(scope_key, self.lease_s))
            except Exception:  # the database is out: try again at the next turn
                log.warning("renewing an idempotency claim failed", exc_info=True)

    async def _still_valid(self, credential: str) -> bool:
        try:
            credential_hash = hash_secret(parse_bearer(credential))
        except AppError:
            return False
        principal = await self.db().read(lambda s: lookup_principal(s, credential_hash))
        return principal is not None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay_receive(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _replay(send: Send, status: int, content_type: str, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode("latin-1")),
                (b"content-length", str(len(body)).encode()),
                (b"idempotent-replayed", b"true"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
