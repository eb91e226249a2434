"""Tests for assay.kit.fetch against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from assay.kit.fetch import (
    FetchedFile,
    FetchError,
    FetchFailed,
    FetchPolicy,
    FetchTooLarge,
    UrlNotAllowed,
    fetch_to_file,
    is_blocked_address,
)

SMALL_BODY = b"hello, assay\n" * 10
BIG_BODY = b"x" * 5000
OPEN = FetchPolicy(allow_private=True, max_bytes=1000, timeout_s=2.0)
CLOSED = FetchPolicy(allow_private=False, timeout_s=1.0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits = 0
    release = threading.Event()

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output quiet
        pass

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        type(self).hits += 1
        parts = urlsplit(self.path)
        route, query = parts.path, parse_qs(parts.query)
        if route == "/small":
            headers = {"Content-Type": "Text/Plain; charset=utf-8"}
            self._send(200, headers | {"Content-Length": str(len(SMALL_BODY))}, SMALL_BODY)
        elif route == "/big-close":
            # No length: the body is delimited by closing the connection.
            self.close_connection = True
            self._send(200, {"Connection": "close"}, BIG_BODY)
        elif route == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(BIG_BODY), 500):
                chunk = BIG_BODY[start : start + 500]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif route == "/liar":
            self.close_connection = True
            self._send(200, {"Content-Length": str(10**12)}, b"tiny")
        elif route.startswith("/hops/"):
            left = int(route.rsplit("/", 1)[1])
            target = "/small" if left <= 1 else f"/hops/{left - 1}"
            self._send(302, {"Location": target, "Content-Length": "0"})
        elif route == "/to":
            self._send(307, {"Location": query["url"][0], "Content-Length": "0"})
        elif route == "/slow":
            # Headers and half the body promptly, then stall until the test is over.
            self.close_connection = True
            self._send(200, {"Content-Length": "10"}, b"12345")
            self.wfile.flush()
            type(self).release.wait(5)
        else:
            self._send(404, {"Content-Length": "9"}, b"not found")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        _Handler.release.set()
        httpd.shutdown()
        httpd.server_close()


def _assert_empty(path: Path) -> None:
    assert list(path.iterdir()) == []


# --- is_blocked_address -------------------------------------------------------------------

BLOCKED = [
    *("127.0.0.1", "127.255.255.254", "::1", "0.0.0.0", "0.1.2.3", "::"),  # loopback, "this"
    *("10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1"),  # RFC 1918
    *("fc00::1", "fd12:3456::1", "fd00:ec2::254", "fec0::1"),  # ULA (incl. AWS IMDS), site-local
    *("169.254.169.254", "169.254.0.1", "fe80::1"),  # link-local / cloud metadata
    *("100.64.0.1", "100.127.255.254"),  # CGNAT shared space
    *("224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1"),  # multicast
    *("255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1", "2001:db8::1"),  # reserved
    *("::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0"),
    *("::ffff:100.64.0.1", "::127.0.0.1", "::10.0.0.1", "::169.254.169.254"),  # v4-compat
    *("64:ff9b::127.0.0.1", "64:ff9b::a00:1", "64:ff9b:1::1"),  # NAT64
    *("2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:c0a8:101::"),  # 6to4
]
PUBLIC = [
    *("8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "11.0.0.1"),
    *("2606:4700:4700::1111", "2a00:1450:4001:80b::200e"),
    *("::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"),  # embedded public v4
]


@pytest.mark.parametrize("address", BLOCKED)
def test_blocked_addresses(address: str) -> None:
    assert is_blocked_address(ip_address(address)) is True


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert is_blocked_address(ip_address(address)) is False


def test_error_message_attribute() -> None:
    err = FetchFailed("boom")
    assert isinstance(err, FetchError)
    assert err.message == "boom" == str(err)


# --- successful fetches ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_small_body(server: str, tmp_path: Path) -> None:
    got = await fetch_to_file(f"{server}/small", tmp_path, OPEN)
    assert isinstance(got, FetchedFile)
    assert got.path.parent == tmp_path
    assert got.path.read_bytes() == SMALL_BODY
    assert got.size == len(SMALL_BODY)
    assert got.sha256 == hashlib.sha256(SMALL_BODY).hexdigest()
    assert got.content_type == "text/plain"
    assert got.final_url == f"{server}/small"


@pytest.mark.asyncio
async def test_redirects_within_limit(server: str, tmp_path: Path) -> None:
    one = await fetch_to_file(f"{server}/hops/1", tmp_path, OPEN)
    three = await fetch_to_file(f"{server}/hops/3", tmp_path, OPEN)
    for got in (one, three):
        assert got.final_url == f"{server}/small"
        assert got.path.read_bytes() == SMALL_BODY


@pytest.mark.asyncio
async def test_unlimited_body_fits_larger_policy(server: str, tmp_path: Path) -> None:
    policy = FetchPolicy(allow_private=True, max_bytes=len(BIG_BODY), timeout_s=2.0)
    for route in ("/big-close", "/big-chunked"):
        got = await fetch_to_file(f"{server}{route}", tmp_path, policy)
        assert got.size == len(BIG_BODY)
        assert got.sha256 == hashlib.sha256(BIG_BODY).hexdigest()
        assert got.content_type is None


# --- failures (each must leave dest_dir empty) ------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("route", ["/big-close", "/big-chunked", "/liar"])
async def test_too_large(server: str, tmp_path: Path, route: str) -> None:
    with pytest.raises(FetchTooLarge):
        await fetch_to_file(f"{server}{route}", tmp_path, OPEN)
    _assert_empty(tmp_path)


@pytest.mark.asyncio
async def test_too_many_redirects(server: str, tmp_path: Path) -> None:
    with pytest.raises(UrlNotAllowed, match="redirects"):
        await fetch_to_file(f"{server}/hops/4", tmp_path, OPEN)
    _assert_empty(tmp_path)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "target",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        "gopher://127.0.0.1:70/_x",
        "http://u:p@127.0.0.1/",
    ],
)
async def test_redirect_target_revalidated(server: str, tmp_path: Path, target: str) -> None:
    with pytest.raises(UrlNotAllowed):
        await fetch_to_file(f"{server}/to?url={target}", tmp_path, OPEN)
    _assert_empty(tmp_path)


@pytest.mark.asyncio
async def test_timeout_mid_body(server: str, tmp_path: Path) -> None:
    started = time.monotonic()
    policy = FetchPolicy(allow_private=True, timeout_s=0.3)
    with pytest.raises(FetchFailed, match="timed out"):
        await fetch_to_file(f"{server}/slow", tmp_path, policy)
    assert time.monotonic() - started < 2
    _assert_empty(tmp_path)


@pytest.mark.asyncio
async def test_http_error_status(server: str, tmp_path: Path) -> None:
    with pytest.raises(FetchFailed, match="404"):
        await fetch_to_file(f"{server}/missing", tmp_path, OPEN)
    _assert_empty(tmp_path)


@pytest.mark.asyncio
async def test_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as sock:  # grab a free port, then free it so nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchFailed):
        await fetch_to_file(f"http://127.0.0.1:{port}/", tmp_path, OPEN)
    _assert_empty(tmp_path)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/x",
        "gopher://example.com/",
        "javascript:alert(1)",
        "/relative/path",
        "",
        "http://",
        "http://user:pw@example.com/",
        "http://[::1/",
    ],
)
async def test_bad_urls(tmp_path: Path, url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        await fetch_to_file(url, tmp_path, CLOSED)
    _assert_empty(tmp_path)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "0.0.0.0",
        "2130706433",
        "0x7f.1",
        "127.1",
        "[::ffff:127.0.0.1]",
        "10.0.0.1",
        "169.254.169.254",
        "192.168.1.1",
        "100.64.0.1",
    ],
)
async def test_blocked_hosts_never_connect(server: str, tmp_path: Path, host: str) -> None:
    port = server.rsplit(":", 1)[1]
    hits = _Handler.hits
    with pytest.raises(UrlNotAllowed) as info:
        await fetch_to_file(f"http://{host}:{port}/small", tmp_path, CLOSED)
    assert host.strip("[]") in info.value.message
    assert _Handler.hits == hits
    _assert_empty(tmp_path)


# --- resolver behaviour (the resolver is faked; HTTP still goes to the real server) ----------


def _fake_resolver(monkeypatch: pytest.MonkeyPatch, answers: list[str] | None) -> list[str]:
    """Make every lookup return ``answers`` (None → NXDOMAIN); returns the looked-up names."""
    seen: list[str] = []

    async def getaddrinfo(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        seen.append(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers]

    monkeypatch.setattr(anyio, "getaddrinfo", getaddrinfo)
    return seen


@pytest.mark.asyncio
async def test_connects_to_the_checked_address(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "rebind.test" only exists in the fake resolver, so success proves the socket was
    # opened to the address we validated rather than to a second, unchecked lookup.
    seen = _fake_resolver(monkeypatch, ["127.0.0.1"])
    port = server.rsplit(":", 1)[1]
    got = await fetch_to_file(f"http://rebind.test:{port}/small", tmp_path, OPEN)
    assert got.path.read_bytes() == SMALL_BODY
    assert got.final_url == f"http://rebind.test:{port}/small"
    assert seen == ["rebind.test"]


@pytest.mark.asyncio
async def test_any_blocked_record_refuses(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_resolver(monkeypatch, ["8.8.8.8", "127.0.0.1"])
    hits = _Handler.hits
    with pytest.raises(UrlNotAllowed) as info:
        await fetch_to_file("http://rebind.test/small", tmp_path, CLOSED)
    assert "rebind.test" in info.value.message
    assert "127.0.0.1" not in info.value.message
    assert _Handler.hits == hits
    _assert_empty(tmp_path)


@pytest.mark.asyncio
async def test_dns_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_resolver(monkeypatch, None)
    with pytest.raises(FetchFailed, match="resolve"):
        await fetch_to_file("http://nowhere.test/", tmp_path, CLOSED)
    _assert_empty(tmp_path)
