"""Error envelope for framework errors, the body limit, and Idempotency-Key."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Any

import httpx

from assay.config import Settings
from assay.main import create_app
from tests.conftest import ADMIN_KEY, make_bucket, make_namespace


def assert_envelope(r: httpx.Response, status: int, type_: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["status"] == status
    assert body["error"]["type"] == type_ and body["error"]["message"]
    assert "detail" not in body
    return body


async def test_unknown_route_wrong_method_and_bad_json(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/v1/nothing-here"), 404, "NotFoundError")
    assert_envelope(await client.put("/v1/namespaces"), 405, "MethodNotAllowedError")
    r = await client.post(
        "/v1/namespaces",
        content=b'{"namespace_name": ',
        headers={"Content-Type": "application/json"},
    )
    assert_envelope(r, 400, "BadRequestError")


async def test_validation_errors_name_the_json_path(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/namespaces", json={"namespace_name": "ok", "feature_extractors": [{"version": "v1"}]}
    )
    body = assert_envelope(r, 422, "ValidationError")
    locs = [e["loc"] for e in body["error"]["details"]["validation_errors"]]
    assert ["feature_extractors", 0, "feature_extractor_name"] in locs


async def _small_limit_client(tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path / "d", admin_key=ADMIN_KEY, max_request_bytes=1024))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://t",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as c:
            yield c


async def test_body_over_the_limit_is_413_by_length_and_by_stream(tmp_path) -> None:
    async for c in _small_limit_client(tmp_path):
        big = {"namespace_name": "x", "description": "a" * 5000}
        assert_envelope(await c.post("/v1/namespaces", json=big), 413, "PayloadTooLargeError")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            yield b'{"namespace_name": "x", "description": "'
            for _ in range(10):
                yield b"a" * 500
            yield b'"}'

        r = await c.post(
            "/v1/namespaces", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert_envelope(r, 413, "PayloadTooLargeError")
        assert (await c.get("/v1/namespaces")).json()["results"] == []


async def test_idempotency_key_replays_without_doing_the_work_twice(
    client: httpx.AsyncClient,
) -> None:
    ns = await make_namespace(client)
    await make_bucket(client, ns["namespace_id"])
    headers = {"X-Namespace": "production", "Idempotency-Key": "k-1"}
    body = {"blobs": [{"property": "product_text", "type": "text", "content": "once"}]}
    first = await client.post("/v1/buckets/product-catalog/objects", json=body, headers=headers)
    again = await client.post("/v1/buckets/product-catalog/objects", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    listed = (await client.get("/v1/buckets/product-catalog/objects", headers=headers)).json()
    assert [o["object_id"] for o in listed["results"]] == [first.json()["object_id"]]

    other = {"blobs": [{"property": "product_text", "type": "text", "content": "different"}]}
    r = await client.post("/v1/buckets/product-catalog/objects", json=other, headers=headers)
    assert_envelope(r, 409, "ConflictError")


async def test_idempotency_failed_answers_are_not_kept(client: httpx.AsyncClient) -> None:
    await make_namespace(client)
    headers = {"X-Namespace": "production", "Idempotency-Key": "k-2"}
    schema = {"properties": {"t": {"type": "text"}}}
    r = await client.post(
        "/v1/buckets",
        json={"bucket_name": "b", "bucket_schema": {"properties": {}}, "x": 1},
        headers=headers,
    )
    assert r.status_code == 422
    # The refusal was not kept: the corrected request may reuse the key, and is then kept.
    fixed = {"bucket_name": "b", "bucket_schema": schema}
    r = await client.post("/v1/buckets", json=fixed, headers=headers)
    assert r.status_code == 200, r.text
    replay = await client.post("/v1/buckets", json=fixed, headers=headers)
    assert replay.status_code == 200 and replay.json()["bucket_id"] == r.json()["bucket_id"]


async def test_idempotency_concurrent_duplicates_run_once(client: httpx.AsyncClient) -> None:
    await make_namespace(client)
    await make_bucket(client, "production")
    headers = {"X-Namespace": "production", "Idempotency-Key": "k-4"}
    body = {"blobs": [{"property": "product_text", "type": "text", "content": "race"}]}
    results = await asyncio.gather(
        *(
            client.post("/v1/buckets/product-catalog/objects", json=body, headers=headers)
            for _ in range(5)
        )
    )
    assert {r.status_code for r in results} <= {200, 409}
    listed = (await client.get("/v1/buckets/product-catalog/objects", headers=headers)).json()
    assert len(listed["results"]) == 1


def test_every_route_is_matched_on_the_app_itself(tmp_path) -> None:
    # FastAPI keeps an included router as a layer of its own, matched twice per request;
    # `include_flat` puts the routes on the app, in the domains' order, with the error
    # responses every route documents, before the health probes and the OpenAPI pages.
    from fastapi.routing import APIRoute

    from assay.api import DOMAIN_ROUTERS
    from assay.kit.openapi import ERROR_RESPONSES

    app = create_app(Settings(data_dir=tmp_path, admin_key=ADMIN_KEY, workers=0))
    api_routes = [r for r in app.router.routes if isinstance(r, APIRoute)]
    declared = [r for router in DOMAIN_ROUTERS for r in router.routes]
    assert [(r.path, r.methods) for r in api_routes[: len(declared)]] == [
        (r.path, r.methods) for r in declared
    ]
    first = app.router.routes[0]
    assert isinstance(first, APIRoute) and first.methods == {"POST"}
    assert first.path == "/v1/buckets/{bucket_identifier}/objects"
    assert set(ERROR_RESPONSES) <= set(first.responses)
    # The web console's router (static pages) may stay included: it is matched after the API.
    nested = [i for i, r in enumerate(app.router.routes) if not hasattr(r, "path")]
    assert nested in ([], [len(app.router.routes) - 1])
    paths = [getattr(r, "path", "") for r in app.router.routes]
    assert paths.index("/healthz") > paths.index("/v1/namespaces")
    assert paths.index("/openapi.json") > paths.index("/healthz")


@functools.cache
def _span_exporter() -> Any:
    """An in-memory exporter behind the global tracer provider (which can be set only once)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


async def test_opentelemetry_spans_only_when_asked_for(tmp_path) -> None:
    # ASSAY_OPENTELEMETRY hands FastAPI's native spans to the global tracer provider; off
    # (the default), a request leaves none, even with a provider configured.
    exporter = _span_exporter()
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for enabled in (False, True):
        exporter.clear()
        settings = Settings(
            data_dir=tmp_path / str(enabled), admin_key=ADMIN_KEY, workers=0, opentelemetry=enabled
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/v1/namespaces", headers=headers)).status_code == 200
        routes = [s.attributes.get("http.route") for s in exporter.get_finished_spans()]
        assert ("/v1/namespaces" in routes) is enabled, routes
