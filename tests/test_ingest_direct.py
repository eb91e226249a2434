"""The registration routes' direct handlers answer every request as FastAPI's path does.

A body declared `application/json` takes the direct handler (`kit/routing.DirectJsonRoute`);
the same body declared `application/json; charset=utf-8` takes FastAPI's own dependency
solving. Each request below is sent both ways and must get the same answer.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import make_bucket
from tests.direct_routes import DIRECT, STANDARD, assert_answered_alike, direct_paths, send

NS = "direct"
SCHEMA = {"properties": {"text": {"type": "text", "required": True}, "n": {"type": "number"}}}
OBJECTS = "/v1/buckets/b/objects"
BATCH = "/v1/buckets/b/objects/batch"
_IDS = re.compile(r"\b(obj|blob|req)_[0-9A-Za-z]{20}\b")
_TIMES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?")


@pytest.fixture
async def c(client: httpx.AsyncClient) -> httpx.AsyncClient:
    r = await client.post("/v1/namespaces", json={"namespace_name": NS, "feature_extractors": []})
    assert r.status_code == 200, r.text
    await make_bucket(client, NS, "b", SCHEMA)
    return client


def _text(n: int) -> dict[str, Any]:
    return {"blobs": [{"property": "text", "type": "text", "content": f"hello {n}"}]}


OK = _text(1)
CASES: list[tuple[str, str, bytes | dict[str, Any] | list[Any] | None, dict[str, str]]] = [
    ("ok", OBJECTS, OK, {}),
    (
        "scalar property",
        OBJECTS,
        {**OK, "blobs": [*OK["blobs"], {"property": "n", "type": "number", "content": 3}]},
        {},
    ),
    (
        "hosted-only field warns",
        OBJECTS,
        {**OK, "idempotency_key": "x", "skip_duplicates": True},
        {},
    ),
    ("unknown field", OBJECTS, {**OK, "colour": "red"}, {}),
    ("wrong type", OBJECTS, {"blobs": "nope"}, {}),
    ("blob of wrong type", OBJECTS, {"blobs": [{"property": "text", "type": "banana"}]}, {}),
    ("a list", OBJECTS, [OK], {}),
    ("null", OBJECTS, b"null", {}),
    ("not JSON", OBJECTS, b"{nope", {}),
    ("NaN", OBJECTS, b'{"metadata": {"x": NaN}}', {}),
    ("huge integer", OBJECTS, b'{"metadata": {"x": 123456789012345678901234}}', {}),
    ("schema violation", OBJECTS, {"blobs": []}, {}),
    ("no key", OBJECTS, OK, {"Authorization": ""}),
    ("bad key", OBJECTS, OK, {"Authorization": "Bearer sk_live_nope_0123456789abcdef"}),
    ("no namespace", OBJECTS, OK, {"X-Namespace": ""}),
    ("unknown namespace", OBJECTS, OK, {"X-Namespace": "nope"}),
    ("bad body and no key", OBJECTS, {"colour": 1}, {"Authorization": ""}),
    ("unknown bucket", "/v1/buckets/nope/objects", OK, {}),
    ("batch", BATCH, {"objects": [_text(2), {"blobs": []}]}, {}),
    ("empty batch", BATCH, {"objects": []}, {}),
    ("batch unknown field", BATCH, {"objects": [OK], "x": 1}, {}),
    ("batch no namespace", BATCH, {"objects": [OK]}, {"X-Namespace": ""}),
]


def _comparable(r: httpx.Response) -> tuple[int, Any]:
    """Status and body with the generated ids and times masked."""
    text = _TIMES.sub("<time>", _IDS.sub(r"\1_<id>", r.text))
    return r.status_code, text


@pytest.mark.parametrize(("name", "path", "body", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_direct_and_standard_paths_answer_alike(
    c: httpx.AsyncClient, name: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    await assert_answered_alike(c, NS, path, body, headers, _comparable)


async def test_a_read_key_is_refused_alike(c: httpx.AsyncClient) -> None:
    r = await c.post("/v1/keys", json={"name": "reader", "role": "read"})
    assert r.status_code == 201, r.text
    reader = {"Authorization": f"Bearer {r.json()['key']}"}
    assert (await send(c, NS, OBJECTS, OK, reader, DIRECT)).status_code == 403
    await assert_answered_alike(c, NS, OBJECTS, OK, reader, _comparable)


async def test_json_bodies_take_the_direct_handler(
    c: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    validated = direct_paths(monkeypatch)
    for content_type in (DIRECT, STANDARD):
        r = await send(c, NS, OBJECTS, _text(7), {}, content_type)
        assert r.status_code == 200, r.text
        r = await send(c, NS, BATCH, {"objects": [_text(8)]}, {}, content_type)
        assert r.status_code == 200, r.text
    assert validated == [
        "/v1/buckets/{bucket_identifier}/objects",
        "/v1/buckets/{bucket_identifier}/objects/batch",
    ]
