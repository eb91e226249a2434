"""A webhook receiver on loopback that records each event and whether its signature holds."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from assay.webhooks.signing import verify

SECRET = "whsec_receiver_test_secret"


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, Any], bool]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = verify(SECRET, body, self.headers["Assay-Signature"])
        self.received.append((json.loads(body), ok))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
