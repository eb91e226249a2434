"""The coalescing transport: a held write goes out with the next one, or at the turn's end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse

from assay.kit import serving
from assay.kit.serving import HOLD_BYTES, CoalescedTransport
from tests.conftest import LiveServer


class Recorder:
    """A transport that records what reaches the socket, one entry per system call."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def writelines(self, lines: list[bytes]) -> None:
        self.sent.append(b"".join(lines))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


async def _turn() -> None:
    """Let the loop run the callbacks already scheduled."""
    await asyncio.sleep(0)


async def test_the_headers_go_out_with_the_body_in_one_write() -> None:
    sink = Recorder()
    transport = CoalescedTransport(sink, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert sink.sent == []
    transport.write(b"body")
    assert sink.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    await _turn()
    assert sink.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody"]  # the scheduled flush found nothing


async def test_a_lone_write_goes_out_at_the_end_of_the_turn_in_order() -> None:
    sink = Recorder()
    transport = CoalescedTransport(sink, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"a")
    transport.write(b"b")
    transport.write(b"c")
    assert sink.sent == [b"ab"]
    await _turn()
    assert sink.sent == [b"ab", b"c"]
    transport.write(b"")  # nothing to send, nothing held
    await _turn()
    assert b"".join(sink.sent) == b"abc"


async def test_a_reused_buffer_is_held_as_it_was_written() -> None:
    sink = Recorder()
    transport = CoalescedTransport(sink, asyncio.get_running_loop())  # type: ignore[arg-type]
    buffer = bytearray(b"first")
    transport.write(buffer)
    buffer[:] = b"later"
    transport.write(memoryview(b"!"))
    assert sink.sent == [b"first!"]


async def test_a_large_write_is_not_held_and_close_sends_what_is() -> None:
    sink = Recorder()
    transport = CoalescedTransport(sink, asyncio.get_running_loop())  # type: ignore[arg-type]
    big = b"x" * HOLD_BYTES
    transport.write(big)
    assert sink.sent == [big]
    transport.write(b"tail")
    assert transport.get_write_buffer_size() == 4
    transport.close()
    assert sink.sent == [big, b"tail"] and sink.closed
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is passed on


async def test_an_aborted_connection_drops_what_is_held() -> None:
    sink = Recorder()
    transport = CoalescedTransport(sink, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"held")
    transport.abort()
    await _turn()
    assert sink.sent == [] and sink.aborted


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/small")
    async def small() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/large")
    async def large() -> Response:
        return Response(b"0123456789" * 300_000, media_type="application/octet-stream")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for i in range(5):
                yield f"part {i}\n".encode()
                await asyncio.sleep(0.01)

        return StreamingResponse(parts(), media_type="text/plain")

    return app


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with LiveServer(_app()) as server:
        yield server.url


def test_uvicorn_on_the_coalescing_protocol_answers_every_kind_of_response(url: str) -> None:
    assert serving.http_protocol() is serving.CoalescingHttpToolsProtocol
    with httpx.Client(base_url=url, timeout=10) as client:  # one kept-alive connection
        for _ in range(3):
            assert client.get("/small").json() == {"hello": "world"}
            large = client.get("/large")
            assert large.content == b"0123456789" * 300_000
            stream = client.get("/stream")
            assert stream.text == "".join(f"part {i}\n" for i in range(5))
            assert stream.headers["transfer-encoding"] == "chunked"
            head = client.head("/small")
            assert head.status_code == 405 and head.content == b""
            assert client.get("/missing").status_code == 404
