"""How the client talks: operations yield effects, a sync or an async runner performs them.

An operation (see `operations.py`) is a generator that yields `Call`, `Put`, `Sleep`,
`Backoff` and `HashFile` effects and receives their results (or has their `AssayError`
thrown into it); it returns the typed answer. The same operation code thus serves `Client`
and `AsyncClient`: only the two runners below differ, and they hold the retry rules:

- 429 and 503 are retried for every request, after `Retry-After` when the server sends one
  (a server answers these before doing the work), else after an exponential backoff with jitter;
- connection errors, 502 and 504 only for requests that are safe to send again: reads, and
  POSTs that carry an `Idempotency-Key` (the server replays the first answer for the same key);
- a 409 "already in progress" on a keyed request means a request with that key is still running
  on the server (or was, in a process that died): wait as its `Retry-After` says and ask again,
  and its answer comes back.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
import anyio.to_thread
import httpx

from assay.client.errors import AssayConnectionError, AssayError, from_response, retry_after_s

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
USER_AGENT = "assay-python/0.1"
CHUNK = 1 << 20  # bytes read from a file per step of an upload
# Connection failures that happen before anything is sent: safe to retry for any request.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Call:
    """One API request; `safe` says it may be sent again after a lost answer."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotency_key: str | None = None
    safe: bool = False
    scoped: bool = True  # sends X-Namespace


@dataclass(frozen=True)
class Put:
    """Send `length` bytes of `path` from `offset` to a signed upload URL (no API key)."""

    url: str
    path: Path
    offset: int
    length: int
    on_bytes: Callable[[int], None] | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Backoff:
    """Before try `attempt + 1` of something: sleeps per the retry policy and answers True,
    or answers False at once when the policy allows no more tries."""

    attempt: int


@dataclass(frozen=True)
class HashFile:
    """The SHA-256 hex digest of a file (read in a worker thread by the async runner)."""

    path: Path


Effect = Call | Put | Sleep | Backoff | HashFile
Op = Generator[Effect, Any, T]


def new_key() -> str:
    """A fresh Idempotency-Key: one per logical call, kept across its retries."""
    return str(uuid.uuid4())


def get(path: str, params: Mapping[str, Any] | None = None, *, scoped: bool = True) -> Call:
    """A read."""
    return Call("GET", path, params=params, safe=True, scoped=scoped)


def create(path: str, body: Any = None, *, scoped: bool = True) -> Call:
    """A POST that changes something, sent with a fresh Idempotency-Key."""
    return Call("POST", path, json=body, idempotency_key=new_key(), safe=True, scoped=scoped)


def query(path: str, body: Any = None) -> Call:
    """A POST that only reads (lists, searches): safe to resend, nothing to key."""
    return Call("POST", path, json=body, safe=True)


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one request."""

    max_attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    # A longer Retry-After is not waited out: the RateLimited error is raised instead.
    max_retry_after_s: float = 120.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, so many clients do not retry in step."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return ceiling * (0.5 + random.random() / 2)

    def after_error(self, call: Call, attempt: int, exc: httpx.TransportError) -> float | None:
        """Seconds to wait before resending after a connection error, or None to give up."""
        if attempt + 1 >= self.max_attempts:
            return None
        if call.safe or isinstance(exc, _NOT_SENT):
            return self.backoff(attempt)
        return None

    def after_answer(self, call: Call, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before resending after an error answer, or None to give up."""
        status = response.status_code
        if attempt + 1 >= self.max_attempts or status < 400:
            return None
        if status in (429, 503):
            after = retry_after_s(response)
            if after is None:
                return self.backoff(attempt)
            return after if after <= self.max_retry_after_s else None
        if status in (502, 504) and call.safe:
            return self.backoff(attempt)
        if status == 409 and call.idempotency_key and _in_progress(response):
            # Retry-After: when the running request's claim runs out if its process is gone
            # (then the retry runs it, or is told it was carried out and its answer lost).
            after = retry_after_s(response)
            if after is not None:
                return min(after, self.max_retry_after_s)
            return self.backoff(attempt) if attempt > 0 else None
        return None


def _in_progress(response: httpx.Response) -> bool:
    return "already in progress" in response.text


@dataclass(frozen=True)
class Connection:
    """Where and as whom: the server's URL, the API key and the namespace."""

    url: str
    api_key: str | None = None
    namespace: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def resolve(
        cls,
        url: str | None,
        api_key: str | None,
        namespace: str | None,
        retry: RetryPolicy | None = None,
    ) -> Connection:
        """Arguments first, then ASSAY_URL, ASSAY_API_KEY and ASSAY_NAMESPACE."""
        env = os.environ
        return cls(
            url=(url or env.get("ASSAY_URL") or DEFAULT_URL).rstrip("/"),
            api_key=api_key or env.get("ASSAY_API_KEY") or None,
            namespace=namespace or env.get("ASSAY_NAMESPACE") or None,
            retry=retry or RetryPolicy(),
        )

    def headers(self, call: Call) -> dict[str, str]:
        """The headers of an API request: key, namespace, idempotency key."""
        out = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        if call.scoped and self.namespace:
            out["X-Namespace"] = self.namespace
        if call.idempotency_key:
            out["Idempotency-Key"] = call.idempotency_key
        return out


def _decoded(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise AssayError(
            f"the server answered {response.status_code} with a body that is not JSON",
            status=response.status_code,
            type="InvalidResponse",
        ) from exc


def _lost(exc: httpx.TransportError, what: str) -> AssayConnectionError:
    return AssayConnectionError(f"{what}: {type(exc).__name__}: {exc}".rstrip(": "))


def _file_chunks(put: Put) -> Iterator[bytes]:
    with put.path.open("rb") as fh:
        fh.seek(put.offset)
        left = put.length
        while left:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                raise AssayError(f"{put.path} shrank while it was being uploaded")
            left -= len(chunk)
            if put.on_bytes is not None:
                put.on_bytes(len(chunk))
            yield chunk


async def _file_chunks_async(put: Put) -> AsyncIterator[bytes]:
    with put.path.open("rb") as fh:
        fh.seek(put.offset)
        left = put.length
        while left:
            chunk = await anyio.to_thread.run_sync(fh.read, min(CHUNK, left))
            if not chunk:
                raise AssayError(f"{put.path} shrank while it was being uploaded")
            left -= len(chunk)
            if put.on_bytes is not None:
                put.on_bytes(len(chunk))
            yield chunk


def _put_headers(put: Put) -> dict[str, str]:
    # An explicit length: S3 refuses chunked bodies, and signs the length when it knows it.
    return {"Content-Length": str(put.length), "User-Agent": USER_AGENT}


def _etag(response: httpx.Response) -> str | None:
    return response.headers.get("etag")


class SyncRunner:
    """Performs an operation's effects with a blocking `httpx.Client`."""

    def __init__(self, http: httpx.Client, conn: Connection) -> None:
        self.http = http
        self.conn = conn

    def run(self, op: Op[T]) -> T:
        """Drive `op` to its return value; only `AssayError`s are handed back into it."""
        value: Any = None
        error: AssayError | None = None
        while True:
            try:
                effect = op.send(value) if error is None else op.throw(error)
            except StopIteration as stop:
                return cast(T, stop.value)
            try:
                value, error = self._perform(effect), None
            except AssayError as exc:
                value, error = None, exc

    def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, Call):
            return self._call(effect)
        if isinstance(effect, Put):
            return self._put(effect)
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        if isinstance(effect, Backoff):
            if effect.attempt + 1 >= self.conn.retry.max_attempts:
                return False
            time.sleep(self.conn.retry.backoff(effect.attempt))
            return True
        return sha256_file(effect.path)

    def _call(self, call: Call) -> Any:
        policy = self.conn.retry
        for attempt in range(policy.max_attempts):
            try:
                response = self.http.request(
                    call.method,
                    self.conn.url + call.path,
                    params=call.params,
                    json=call.json,
                    headers=self.conn.headers(call),
                )
            except httpx.TransportError as exc:
                delay = policy.after_error(call, attempt, exc)
                if delay is None:
                    raise _lost(exc, f"{call.method} {self.conn.url}{call.path}") from exc
                time.sleep(delay)
                continue
            if response.is_success:
                return _decoded(response)
            delay = policy.after_answer(call, attempt, response)
            if delay is None:
                raise from_response(response)
            time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _put(self, put: Put) -> str | None:
        try:
            response = self.http.put(put.url, content=_file_chunks(put), headers=_put_headers(put))
        except httpx.TransportError as exc:
            raise _lost(exc, "upload PUT") from exc
        if not response.is_success:
            raise from_response(response)
        return _etag(response)


class AsyncRunner:
    """Performs an operation's effects with an `httpx.AsyncClient`."""

    def __init__(self, http: httpx.AsyncClient, conn: Connection) -> None:
        self.http = http
        self.conn = conn

    async def run(self, op: Op[T]) -> T:
        """Drive `op` to its return value; only `AssayError`s are handed back into it."""
        value: Any = None
        error: AssayError | None = None
        while True:
            try:
                effect = op.send(value) if error is None else op.throw(error)
            except StopIteration as stop:
                return cast(T, stop.value)
            try:
                value, error = await self._perform(effect), None
            except AssayError as exc:
                value, error = None, exc

    async def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, Call):
            return await self._call(effect)
        if isinstance(effect, Put):
            return await self._put(effect)
        if isinstance(effect, Sleep):
            await anyio.sleep(effect.seconds)
            return None
        if isinstance(effect, Backoff):
            if effect.attempt + 1 >= self.conn.retry.max_attempts:
                return False
            await anyio.sleep(self.conn.retry.backoff(effect.attempt))
            return True
        return await anyio.to_thread.run_sync(sha256_file, effect.path)

    async def _call(self, call: Call) -> Any:
        policy = self.conn.retry
        for attempt in range(policy.max_attempts):
            try:
                response = await self.http.request(
                    call.method,
                    self.conn.url + call.path,
                    params=call.params,
                    json=call.json,
                    headers=self.conn.headers(call),
                )
            except httpx.TransportError as exc:
                delay = policy.after_error(call, attempt, exc)
                if delay is None:
                    raise _lost(exc, f"{call.method} {self.conn.url}{call.path}") from exc
                await anyio.sleep(delay)
                continue
            if response.is_success:
                return _decoded(response)
            delay = policy.after_answer(call, attempt, response)
            if delay is None:
                raise from_response(response)
            await anyio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _put(self, put: Put) -> str | None:
        try:
            response = await self.http.put(
                put.url, content=_file_chunks_async(put), headers=_put_headers(put)
            )
        except httpx.TransportError as exc:
            raise _lost(exc, "upload PUT") from exc
        if not response.is_success:
            raise from_response(response)
        return _etag(response)
