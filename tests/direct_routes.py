"""Sending a request both ways through a `kit/routing.DirectJsonRoute`: with a body declared
`application/json` it takes the direct path, declared `application/json; charset=utf-8` it
takes FastAPI's own dependency solving. The tests of each such route require the same answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from assay.kit.routing import DirectJsonRoute

DIRECT = "application/json"
STANDARD = "application/json; charset=utf-8"


async def send(
    c: httpx.AsyncClient,
    namespace: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    content_type: str,
) -> httpx.Response:
    """POST `body` (JSON, or these bytes) in `namespace`; a header given empty is left out."""
    raw = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    sent = {"X-Namespace": namespace, "Content-Type": content_type, **headers}
    return await c.post(path, content=raw, headers={k: v for k, v in sent.items() if v})


async def assert_answered_alike(
    c: httpx.AsyncClient,
    namespace: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    comparable: Callable[[httpx.Response], Any],
) -> None:
    """The request sent both ways gets the same answer, as `comparable` sees it."""
    direct = await send(c, namespace, path, body, headers, DIRECT)
    standard = await send(c, namespace, path, body, headers, STANDARD)
    assert comparable(direct) == comparable(standard)
    assert direct.headers["content-type"] == standard.headers["content-type"]


def direct_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The route paths whose direct path validates a body from now on, in order."""
    validated: list[str] = []
    original = DirectJsonRoute.validated_body

    def spy(route: DirectJsonRoute, value: Any) -> Any:
        validated.append(route.path)
        return original(route, value)

    monkeypatch.setattr(DirectJsonRoute, "validated_body", spy)
    return validated
