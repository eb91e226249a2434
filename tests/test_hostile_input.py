"""Hostile input: what JSON text cannot hold, bad filter values, content types, downloads,
duplicate uploads, signed-URL spellings and the connection after a 500. Nothing a refused
request sent is ever stored."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest

from assay.config import Settings
from assay.kit import jsonbody
from tests.conftest import ADMIN_KEY, LiveServer, b64, make_bucket, png_bytes

NS = {"X-Namespace": "hostile"}
SCHEMA = {
    "properties": {
        "body": {"type": "text"},
        "doc": {"type": "json"},
        "img": {"type": "image"},
        "file": {"type": "binary"},
    }
}
OBJECTS = "/v1/buckets/b/objects"


@pytest.fixture
async def c(client: httpx.AsyncClient) -> httpx.AsyncClient:
    r = await client.post(
        "/v1/namespaces",
        json={
            "namespace_name": "hostile",
            "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1"}],
        },
    )
    assert r.status_code == 200, r.text
    await make_bucket(client, "hostile", "b", SCHEMA)
    return client


async def post_raw(
    c: httpx.AsyncClient, path: str, raw: str | bytes, **headers: str
) -> httpx.Response:
    content = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    headers = {**NS, "Content-Type": "application/json", **headers}
    return await c.post(path, content=content, headers=headers)


async def object_count(c: httpx.AsyncClient) -> int:
    r = await c.get("/v1/buckets/b", headers=NS)
    assert r.status_code == 200, r.text
    return int(r.json()["object_count"])


def error_at(r: httpx.Response) -> list[Any]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["success"] is False and body["error"]["type"] == "ValidationError"
    return list(body["error"]["details"]["validation_errors"][0]["loc"])


# 1. JSON text that Python's parser accepts but JSON (and the databases) cannot hold.


async def test_a_lone_surrogate_is_refused_naming_the_field_and_stores_nothing(
    c: httpx.AsyncClient,
) -> None:
    raw = r'{"metadata":{"a":"\ud800x"},"blobs":[]}'
    for _ in range(2):  # a retry with the same key is refused again, storing nothing either
        r = await post_raw(c, OBJECTS, raw, **{"Idempotency-Key": "k1"})
        assert error_at(r) == ["metadata", "a"]
        assert "surrogate" in r.json()["error"]["message"]
    assert await object_count(c) == 0
    for r in (
        await c.get(OBJECTS, headers=NS),
        await c.post(f"{OBJECTS}/list", headers=NS, json={}),
    ):
        assert r.status_code == 200 and r.json()["results"] == []


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ('{"metadata":{"x":NaN}}', ["metadata", "x"]),
        ('{"metadata":{"x":[1,Infinity]}}', ["metadata", "x", 1]),
        ('{"metadata":{"x":-Infinity}}', ["metadata", "x"]),
        ('{"metadata":{"x":1e400}}', ["metadata", "x"]),
        ('{"metadata":{"x":9223372036854775808}}', ["metadata", "x"]),
        ('{"metadata":{"x":-123456789012345678901234567890}}', ["metadata", "x"]),
        (r'{"metadata":{"x":"a\u0000b"}}', ["metadata", "x"]),
        (r'{"metadata":{"\udfff":1}}', ["metadata", "\\udfff"]),
        (r'{"blobs":[{"property":"body","type":"text","content":"\ud83d"}]}', ["blobs", 0]),
        (r'{"blobs":[{"property":"doc","type":"json","content":{"k":"\udc00"}}]}', ["blobs", 0]),
        (r'{"blobs":[{"property":"body","type":"text","data":{"text":"\ud800"}}]}', ["blobs", 0]),
    ],
)
async def test_values_json_cannot_hold_are_422_naming_the_field(
    c: httpx.AsyncClient, raw: str, loc: list[Any]
) -> None:
    r = await post_raw(c, OBJECTS, raw)
    assert error_at(r)[: len(loc)] == loc
    assert await object_count(c) == 0


async def test_every_route_parses_bodies_strictly(c: httpx.AsyncClient) -> None:
    surrogate = r'"\ud800"'
    cases = {
        f"{OBJECTS}/list": (
            f'{{"filters":{{"AND":[{{"field":"metadata.a","value":{surrogate}}}]}}}}'
        ),
        "/v1/buckets/b/batches": f'{{"object_ids":[{surrogate}]}}',
        f"{OBJECTS}/batch": f'{{"objects":[{{"metadata":{{"a":{surrogate}}}}}]}}',
        "/v1/buckets": f'{{"bucket_name":{surrogate},"bucket_schema":{{"properties":{{}}}}}}',
        "/v1/retrievers/execute": f'{{"inputs":{{"query":{surrogate}}},"stages":[]}}',
        "/v1/webhooks": f'{{"url":"https://example.com/h","event_types":[{surrogate}]}}',
        "/v1/buckets/b/uploads": f'{{"filename":{surrogate}}}',
    }
    for path, raw in cases.items():
        r = await post_raw(c, path, raw)
        assert r.status_code == 422, (path, r.text)
    deep = "[" * 200 + "]" * 200
    r = await post_raw(c, OBJECTS, f'{{"metadata":{{"a":{deep}}}}}')
    assert (
        r.status_code == 422
        and r.json()["error"]["details"]["validation_errors"][0]["type"] == "too_deep"
    )
    r = await post_raw(c, OBJECTS, '{"metadata": {')
    assert r.status_code == 400 and r.json()["error"]["type"] == "BadRequestError"
    assert await object_count(c) == 0


@pytest.mark.parametrize(
    "raw",
    [b'{"x": NaN}', b'["\\ud800"]', b"[" * 5000 + b"]" * 5000, b'{"a": 1e999}', b"{bad"],
)
async def test_json_blobs_by_bytes_follow_the_same_rules(c: httpx.AsyncClient, raw: bytes) -> None:
    """A JSON blob given as bytes (base64, upload, URL) is held to what a JSON body is."""
    blob = {"property": "doc", "type": "json", "data": {"base64": b64(raw)}}
    r = await c.post(OBJECTS, headers=NS, json={"blobs": [blob]})
    assert error_at(r) == ["blobs", 0]
    r = await _upload(c, raw, "doc", "application/json")
    assert r.status_code == 422, r.text
    assert await object_count(c) == 0


def test_the_parser_keeps_exact_integers_and_valid_unicode() -> None:
    value = jsonbody.parse('{"a": 9223372036854775807, "b": "\\ud83d\\ude00 é", "c": 1.5}'.encode())
    assert value == {"a": 2**63 - 1, "b": "😀 é", "c": 1.5}
    assert jsonbody.parse(b'{"id": "12345678901234567890123"}') == {"id": "12345678901234567890123"}


async def test_a_500_inside_a_write_stores_nothing(
    c: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assay.objects import service

    def broken_emit(*_: Any, **__: Any) -> None:
        raise RuntimeError("the outbox broke after the rows were inserted")

    monkeypatch.setattr(service, "emit_many", broken_emit)
    body = {"blobs": [{"property": "body", "type": "text", "content": "hello"}]}
    r = await c.post(OBJECTS, headers=NS, json=body)
    assert r.status_code == 500 and r.json()["error"]["type"] == "InternalError"
    monkeypatch.undo()
    assert await object_count(c) == 0
    assert (await c.get(OBJECTS, headers=NS)).json()["results"] == []


# 4. and 7. Content types from users, and how blobs are served.


async def test_content_types_with_control_characters_are_refused(c: httpx.AsyncClient) -> None:
    r = await c.post(
        "/v1/buckets/b/uploads",
        headers=NS,
        json={
            "filename": "a.png",
            "content_type": "image/png\r\nX-Evil: 1",
            "blob_property": "img",
        },
    )
    assert error_at(r) == ["content_type"]
    blob = {
        "property": "file",
        "type": "binary",
        "data": {"base64": b64(b"abc"), "mime_type": "text/plain\r\nSet-Cookie: a=b"},
    }
    r = await c.post(OBJECTS, headers=NS, json={"blobs": [blob]})
    assert error_at(r) == ["blobs", 0, "data", "mime_type"]
    assert await object_count(c) == 0


async def test_declared_content_types_are_normalised(c: httpx.AsyncClient) -> None:
    r = await c.post(
        "/v1/buckets/b/uploads",
        headers=NS,
        json={"filename": "a.png", "content_type": "IMAGE/PNG; x=1", "blob_property": "img"},
    )
    assert r.status_code == 200 and r.json()["content_type"] == "image/png"
    blob = {
        "property": "file",
        "type": "binary",
        "data": {"base64": b64(b"abc"), "mime_type": "Application/PDF ; q=1"},
    }
    r = await c.post(OBJECTS, headers=NS, json={"blobs": [blob]})
    assert r.status_code == 200 and r.json()["blobs"][0]["content_type"] == "application/pdf"


@pytest.mark.parametrize(
    ("mime", "prop", "kind", "attachment"),
    [
        ("text/html", "file", "binary", True),
        ("text/html; charset=utf-8", "file", "binary", True),
        ("image/svg+xml", "file", "binary", True),
        ("application/javascript", "file", "binary", True),
        ("application/xhtml+xml", "file", "binary", True),
        ("text/plain", "body", "text", False),
    ],
)
async def test_downloads_are_never_rendered_from_the_api_origin(
    c: httpx.AsyncClient, mime: str, prop: str, kind: str, attachment: bool
) -> None:
    page = b"<html><script>alert(document.cookie)</script></html>"
    blob = {
        "property": prop,
        "type": kind,
        "filename": 'x"\r\n.html',
        "data": {"base64": b64(page), "mime_type": mime},
    }
    r = await c.post(OBJECTS, headers=NS, json={"blobs": [blob]})
    assert r.status_code == 200, r.text
    obj = r.json()
    url = f"{OBJECTS}/{obj['object_id']}/blobs/{obj['blobs'][0]['blob_id']}/content"
    got = await c.get(url, headers=NS)
    assert got.status_code == 200 and got.content == page
    assert got.headers["content-type"].startswith(mime)
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]
    disposition = got.headers.get("content-disposition", "")
    assert disposition.startswith("attachment") == attachment
    assert "\r" not in disposition and "\n" not in disposition


# 5. An upload's duplicate check never skips its type check.


async def _upload(c: httpx.AsyncClient, data: bytes, prop: str, mime: str) -> httpx.Response:
    r = await c.post(
        "/v1/buckets/b/uploads",
        headers=NS,
        json={"filename": "f", "content_type": mime, "blob_property": prop},
    )
    assert r.status_code == 200, r.text
    up = r.json()
    put = await c.put(up["presigned_url"], content=data, headers={"Authorization": ""})
    assert put.status_code == 200, put.text
    return await c.post(f"/v1/buckets/b/uploads/{up['upload_id']}/confirm", headers=NS)


async def test_bytes_held_as_text_are_not_an_image_duplicate(c: httpx.AsyncClient) -> None:
    for data in (b"hello there", b""):
        blob = {"property": "body", "type": "text", "content": data.decode()}
        r = await c.post(OBJECTS, headers=NS, json={"blobs": [blob]})
        assert r.status_code == 200, r.text
        before = await object_count(c)
        r = await _upload(c, data, "img", "image/png")
        assert r.status_code == 422, r.text
        assert await object_count(c) == before
    # the same bytes in the same property are still a duplicate
    image = png_bytes("DUP")
    first = await _upload(c, image, "img", "image/png")
    second = await _upload(c, image, "img", "image/png")
    assert first.status_code == second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["object_id"] == first.json()["object_id"]


async def test_upload_sizes_past_the_limits_are_refused(c: httpx.AsyncClient) -> None:
    base = {"filename": "big.bin", "content_type": "application/octet-stream"}
    for extra, status in (
        ({"file_size_bytes": 2**70}, 422),
        ({"file_size_bytes": 2**62}, 422),
        ({"file_size_bytes": 200 * 1024**3}, 413),
        ({"file_size_bytes": 60 * 1024**3, "multipart": True, "part_size_bytes": 5 * 1024**2}, 422),
    ):
        r = await c.post("/v1/buckets/b/uploads", headers=NS, json={**base, **extra})
        assert r.status_code == status, (extra, r.text)


# 6. Filter values are checked against what they compare with.


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "created_at", "operator": "gt", "value": "x"},
        {"field": "created_at", "operator": "gt", "value": 5},
        {"field": "created_at", "operator": "in", "value": [{"a": 1}]},
        {"field": "object_id", "operator": "eq", "value": 3},
        {"field": "metadata.n", "operator": "in", "value": [{"a": 1}]},
        {"field": "metadata.n", "operator": "in", "value": [1, "a"]},
        {"field": "metadata.n", "operator": "in", "value": [[1]]},
        {"field": "metadata.n", "operator": "gt", "value": 9223372036854775808},
        {"field": "metadata.n", "operator": "contains", "value": 3},
        {"field": "metadata.n", "operator": "exists", "value": "yes"},
    ],
)
async def test_filter_values_of_the_wrong_kind_are_422(
    c: httpx.AsyncClient, condition: dict[str, Any]
) -> None:
    filters = {"AND": [condition]}
    r = await c.post(f"{OBJECTS}/list", headers=NS, json={"filters": filters})
    assert error_at(r)[0] == "filters"
    stage = {
        "stage_name": "words",
        "config": {"stage_id": "text_search", "parameters": {"query": "{{INPUT.query}}"}},
    }
    r = await c.post(
        "/v1/retrievers/execute",
        headers=NS,
        json={
            "collection_identifiers": ["text_extractor"],
            "stages": [stage],
            "inputs": {"query": "hello", "filters": filters},
        },
    )
    assert "filters" in error_at(r)


async def test_well_typed_filters_still_work(c: httpx.AsyncClient) -> None:
    for n in (1, 2, 3):
        body = {
            "metadata": {"n": n},
            "blobs": [{"property": "body", "type": "text", "content": "x"}],
        }
        assert (await c.post(OBJECTS, headers=NS, json=body)).status_code == 200
    for condition, count in (
        ({"field": "created_at", "operator": "gt", "value": "2000-01-01T00:00:00Z"}, 3),
        ({"field": "created_at", "operator": "lt", "value": "2000-01-01"}, 0),
        ({"field": "metadata.n", "operator": "in", "value": [1, 2.0]}, 2),
        ({"field": "metadata.n", "operator": "gte", "value": 2}, 2),
        ({"field": "metadata.n", "operator": "exists"}, 3),
    ):
        r = await c.post(f"{OBJECTS}/list", headers=NS, json={"filters": {"AND": [condition]}})
        assert r.status_code == 200, r.text
        assert len(r.json()["results"]) == count, condition


# 8. Signed URLs have one spelling; a 500 leaves the connection usable.


async def test_upload_urls_accept_only_the_canonical_signature(c: httpx.AsyncClient) -> None:
    r = await c.post(
        "/v1/buckets/b/uploads",
        headers=NS,
        json={"filename": "a.png", "content_type": "image/png", "blob_property": "img"},
    )
    url = r.json()["presigned_url"]
    last = url[-1]
    # the MAC is 32 bytes: its last base64 character carries 4 bits of padding
    flipped = url[:-1] + ("AEIMQUYcgkosw048"[("AEIMQUYcgkosw048".find(last) + 1) % 16])
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    low_bit = url[:-1] + alphabet[alphabet.index(last) ^ 1]
    for bad in (low_bit, url + "=", url + "==", flipped):
        if bad == url:
            continue
        r = await c.put(bad, content=png_bytes(), headers={"Authorization": ""})
        assert r.status_code == 403, bad
    assert (await c.put(url, content=png_bytes(), headers={"Authorization": ""})).status_code == 200


def test_after_a_500_the_keep_alive_connection_still_answers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assay.namespaces import service as namespaces

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(namespaces, "list_page", broken)
    with LiveServer(settings) as server:
        request = (
            f"GET /v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\r\n"
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request.encode())  # both requests on one connection, pipelined
            received = b""
            while received.count(b"HTTP/1.1 ") < 2:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
    assert received.startswith(b"HTTP/1.1 500"), received[:200]
    assert b'"InternalError"' in received and b"request_id" in received
    assert received.count(b"HTTP/1.1 200") == 1, received


def test_every_route_uses_the_strict_json_route() -> None:
    from fastapi.routing import APIRoute

    from assay import api, health
    from assay.kit.routing import StrictJsonRoute

    routers = [health.router, *api.DOMAIN_ROUTERS]
    routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 50 and all(isinstance(r, StrictJsonRoute) for r in routes)


def test_error_envelopes_encode_any_text() -> None:
    from assay.main import ErrorResponse

    body = ErrorResponse({"error": {"message": "bad \ud800 key"}}).body
    assert json.loads(body)["error"]["message"] == "bad \ud800 key"
