"""SSRF-safe async download of a remote URL into a temp file.

Every TCP connection (including each redirect hop) goes through a network backend that
resolves the host, rejects blocked addresses and then connects to the exact IP it checked,
so DNS rebinding between "check" and "connect" is impossible. URLs carrying credentials
(``http://user:pass@host``) are rejected: they are never needed for public downloads and
they make hostnames easy to disguise (``http://good.example@evil.example``).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import socket
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ALLOWED_SCHEMES = frozenset({"http", "https"})
_HTTPCORE_ERRORS = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Ranges that older stdlib versions do not flag via is_private/is_global/is_reserved.
_EXTRA_BLOCKED = (
    ipaddress.IPv4Network("100.64.0.0/10"),  # CGNAT shared space
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # local-use NAT64
    ipaddress.IPv6Network("fec0::/10"),  # deprecated site-local
    ipaddress.IPv6Network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
)


class FetchError(Exception):
    """Base class for fetch failures; ``message`` is safe to show to API clients."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UrlNotAllowed(FetchError):
    """The URL (or a redirect target) is malformed, uses a bad scheme or a blocked host."""


class FetchTooLarge(FetchError):
    """The body is larger than the policy allows."""


class FetchFailed(FetchError):
    """DNS, connection, timeout or HTTP status failure."""


@dataclass(frozen=True)
class FetchedFile:
    path: Path
    size: int
    sha256: str
    content_type: str | None
    final_url: str


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    max_bytes: int = 100 * 1024 * 1024
    timeout_s: float = 20.0
    max_redirects: int = 3


def is_blocked_address(ip: IPAddress) -> bool:
    """Return True if ``ip`` is not a public unicast address safe to fetch from."""
    if isinstance(ip, ipaddress.IPv6Address):
        # Traffic to these lands on the embedded IPv4 host (via a dual-stack socket or the
        # NAT64 gateway), so judge that host; the v6 prefixes alone are "reserved" and would
        # also block public sites reached over NAT64.
        if ip.ipv4_mapped is not None:
            return is_blocked_address(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_blocked_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None and is_blocked_address(ip.sixtofour):
            return True
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or any(ip in net for net in _EXTRA_BLOCKED)
    )


async def resolve_checked(host: str, port: int, allow_private: bool) -> list[str]:
    """Resolve ``host`` and return its addresses, refusing if any of them is blocked."""
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchFailed(f"could not resolve host {host!r}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise FetchFailed(f"could not resolve host {host!r}")
    # Refuse if *any* record is blocked: an attacker can mix public and private records
    # and we must not let connection fallback pick the private one.
    if not allow_private and any(is_blocked_address(ipaddress.ip_address(a)) for a in addresses):
        raise UrlNotAllowed(f"host {host!r} is not allowed")
    return addresses


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Network backend that only ever connects to addresses it has just validated."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_checked(host, port, self._allow_private)
        last_error: Exception | None = None
        for address in addresses:
            try:
                # TLS SNI and certificate checks still use the URL hostname: httpcore passes
                # it to start_tls separately from the address we dial here.
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@contextlib.contextmanager
def _map_httpcore_errors() -> Iterator[None]:
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise FetchFailed("timed out while fetching") from exc
    except _HTTPCORE_ERRORS as exc:
        raise FetchFailed(f"connection failed ({type(exc).__name__})") from exc


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpcore.Response) -> None:
        self._response = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _map_httpcore_errors():
            async for part in self._response.aiter_stream():
                yield part

    async def aclose(self) -> None:
        await self._response.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """httpx transport over a pool using ``_GuardedBackend``.

    httpx 0.28's AsyncHTTPTransport cannot take a custom network backend, hence this.
    """

    def __init__(self, allow_private: bool) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=_GuardedBackend(allow_private),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _map_httpcore_errors():
            core_response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=core_response.status,
            headers=core_response.headers,
            stream=_ResponseStream(core_response),
            extensions=core_response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def checked_url(raw: str | httpx.URL) -> httpx.URL:
    """Parse ``raw`` and apply the scheme/credential rules (addresses are checked on connect)."""
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UrlNotAllowed("invalid URL") from exc
    if url.scheme not in _ALLOWED_SCHEMES:
        raise UrlNotAllowed(f"URL scheme {url.scheme!r} is not allowed")
    if not url.host:
        raise UrlNotAllowed("URL has no host")
    if url.userinfo:
        raise UrlNotAllowed("URLs with credentials are not allowed")
    return url


async def _download(response: httpx.Response, dest_dir: Path, max_bytes: int) -> FetchedFile:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchTooLarge(f"body is larger than {max_bytes} bytes")
    digest = hashlib.sha256()
    size = 0
    path: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            delete=False, dir=dest_dir, prefix="fetch-", suffix=".part"
        ) as tmp:
            path = Path(tmp.name)
            # aiter_raw: store the bytes as served, never inflate (no decompression bombs).
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchTooLarge(f"body is larger than {max_bytes} bytes")
                digest.update(chunk)
                # Disk writes can stall; keep them off the event loop.
                await anyio.to_thread.run_sync(tmp.write, chunk)
    except BaseException:
        # Covers cancellation and timeouts too: never leave a partial file behind.
        if path is not None:
            path.unlink(missing_ok=True)
        raise
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return FetchedFile(path, size, digest.hexdigest(), content_type or None, str(response.url))


async def _follow(
    client: httpx.AsyncClient, url: httpx.URL, dest_dir: Path, policy: FetchPolicy
) -> FetchedFile:
    for _ in range(policy.max_redirects + 1):
        async with client.stream("GET", url) as response:
            if response.is_redirect:
                try:
                    target = url.join(response.headers["location"])
                except httpx.InvalidURL as exc:
                    raise UrlNotAllowed("redirect to an invalid URL") from exc
                url = checked_url(target)
                continue
            if not response.is_success:
                raise FetchFailed(f"{url.host} answered HTTP {response.status_code}")
            return await _download(response, dest_dir, policy.max_bytes)
    raise UrlNotAllowed(f"too many redirects (more than {policy.max_redirects})")


async def fetch_to_file(url: str, dest_dir: Path, policy: FetchPolicy) -> FetchedFile:
    """Download ``url`` into a new temp file in ``dest_dir`` under ``policy``'s limits."""
    checked = checked_url(url)
    client = httpx.AsyncClient(
        transport=GuardedTransport(policy.allow_private),
        follow_redirects=False,  # each hop must be re-validated by _follow
        trust_env=False,  # an env proxy would bypass the address pinning
        timeout=policy.timeout_s,
        # Identity so the stored bytes (and sha256) are the resource itself, not a gzip of it.
        headers={"Accept-Encoding": "identity"},
    )
    try:
        with anyio.fail_after(policy.timeout_s):
            async with client:
                return await _follow(client, checked, dest_dir, policy)
    except TimeoutError as exc:
        raise FetchFailed(f"timed out after {policy.timeout_s:g}s") from exc
