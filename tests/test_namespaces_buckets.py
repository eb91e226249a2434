"""Namespaces and buckets over HTTP: create, validate, read, patch, list, delete, counters."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from assay.config import Settings
from tests.conftest import ADMIN_KEY, SEED_SCHEMA, b64, make_bucket, make_namespace, png_bytes


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Every blob in the file store: these tests check its files go with their owners."""
    return Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, small_blob_max_bytes=0)


NS_ID = re.compile(r"^ns_[0-9A-Za-z]{20}$")
BKT_ID = re.compile(r"^bkt_[0-9A-Za-z]{20}$")
SEED_NAMESPACE = {
    "namespace_name": "production",
    "feature_extractors": [{"feature_extractor_name": "multimodal_extractor", "version": "v1"}],
}
BLOB_TYPES = ["text", "image", "audio", "video", "json", "binary", "pdf"]
SCALAR_TYPES = ["string", "number", "integer", "boolean", "object", "array", "date", "datetime"]


def assert_error(r: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"success", "status", "error", "request_id"}, body
    assert body["request_id"] == r.headers["x-request-id"]
    assert body["success"] is False and body["status"] == status
    assert body["error"]["type"] == type_
    assert body["error"]["message"]
    return dict(body["error"])


def timestamp(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == dt.timedelta(0), value
    return parsed


async def defaults_of(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    """Each param's default, from the extractor catalogue's params_schema."""
    r = await client.get("/v1/feature-extractors")
    assert r.status_code == 200, r.text
    spec = next(e for e in r.json() if e["feature_extractor_name"] == name)
    props = spec["params_schema"]["properties"]
    assert props, spec
    return {k: v["default"] for k, v in props.items() if "default" in v}


async def collect_pages(
    client: httpx.AsyncClient, url: str, limit: int, headers: dict[str, str] | None = None
) -> list[list[str]]:
    """Ids page by page through `GET url?limit=&cursor=`."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = await client.get(url, params=params, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["pagination"]["limit"] == limit
        ids = [x.get("namespace_id") or x.get("bucket_id") for x in body["results"]]
        pages.append(ids)
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, "pagination does not end"


async def collect_post_pages(
    client: httpx.AsyncClient, url: str, limit: int, headers: dict[str, str] | None = None
) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        r = await client.post(url, json={"limit": limit, "cursor": cursor}, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append([x.get("namespace_id") or x.get("bucket_id") for x in body["results"]])
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, "pagination does not end"


# =========================================================================== namespaces


async def test_create_namespace_with_the_seed_body(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/namespaces", json=SEED_NAMESPACE)
    assert r.status_code == 200, r.text
    ns = r.json()
    assert NS_ID.match(ns["namespace_id"])
    assert ns["namespace_name"] == "production"
    assert ns["description"] is None
    assert ns["bucket_count"] == 0 and ns["object_count"] == 0
    assert ns["warnings"] == []
    created = timestamp(ns["created_at"])
    assert abs(created - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    timestamp(ns["updated_at"])

    (fe,) = ns["feature_extractors"]
    assert fe["feature_extractor_name"] == "multimodal_extractor"
    assert fe["version"] == "v1"
    assert fe["feature_extractor_id"]
    assert fe["params"] == await defaults_of(client, "multimodal_extractor")

    # Read back by id and by name: the same namespace.
    for ident in (ns["namespace_id"], "production"):
        r = await client.get(f"/v1/namespaces/{ident}")
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["namespace_id"] == ns["namespace_id"]
        assert got["feature_extractors"] == ns["feature_extractors"]
        assert got["created_at"] == ns["created_at"]


async def test_create_namespace_explicit_params_and_several_extractors(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/v1/namespaces",
        json={
            "namespace_name": "docs",
            "description": "documentation site",
            "feature_extractors": [
                {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "params": {"chunk_size": 500, "split_by": "paragraphs"},
                },
                {"feature_extractor_name": "image_extractor"},  # version defaults to v1
            ],
        },
    )
    assert r.status_code == 200, r.text
    ns = r.json()
    assert ns["description"] == "documentation site"
    text, image = ns["feature_extractors"]
    expected_text = {
        **await defaults_of(client, "text_extractor"),
        "chunk_size": 500,
        "split_by": "paragraphs",
    }
    assert text["params"] == expected_text
    assert image["feature_extractor_name"] == "image_extractor" and image["version"] == "v1"
    assert image["params"] == await defaults_of(client, "image_extractor")
    assert text["feature_extractor_id"] != image["feature_extractor_id"]

    # No extractors at all is a valid namespace.
    r = await client.post("/v1/namespaces", json={"namespace_name": "bare"})
    assert r.status_code == 200, r.text
    assert r.json()["feature_extractors"] == []


async def test_duplicate_namespace_name_is_409(client: httpx.AsyncClient) -> None:
    first = await make_namespace(client, "production")
    r = await client.post("/v1/namespaces", json=SEED_NAMESPACE)
    err = assert_error(r, 409, "AlreadyExistsError")
    assert "production" in err["message"]
    r = await client.get("/v1/namespaces")
    assert [n["namespace_id"] for n in r.json()["results"]] == [first["namespace_id"]]


@pytest.mark.parametrize(
    ("name", "version"),
    [("nonexistent_extractor", "v1"), ("multimodal_extractor", "v9")],
)
async def test_unknown_extractor_is_422_listing_available(
    client: httpx.AsyncClient, name: str, version: str
) -> None:
    r = await client.post(
        "/v1/namespaces",
        json={
            "namespace_name": "production",
            "feature_extractors": [
                {"feature_extractor_name": "text_extractor", "version": "v1"},
                {"feature_extractor_name": name, "version": version},
            ],
        },
    )
    err = assert_error(r, 422, "ValidationError")
    assert f"{name}@{version}" in err["message"]
    for available in ("multimodal_extractor@v1", "text_extractor@v1", "image_extractor@v1"):
        assert available in err["message"]
    assert err["details"]["validation_errors"][0]["loc"] == ["feature_extractors", 1]
    r = await client.get("/v1/namespaces/production")
    assert_error(r, 404, "NotFoundError")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"chunk_size": "lots"}, "chunk_size"),
        ({"chunk_size": 1}, "chunk_size"),  # below the minimum
        ({"split_by": "words"}, "split_by"),
        ({"no_such_param": True}, "no_such_param"),
    ],
)
async def test_bad_extractor_params_are_422_under_feature_extractors(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    r = await client.post(
        "/v1/namespaces",
        json={
            "namespace_name": "production",
            "feature_extractors": [
                {"feature_extractor_name": "multimodal_extractor", "params": params}
            ],
        },
    )
    err = assert_error(r, 422, "ValidationError")
    locs = [e["loc"] for e in err["details"]["validation_errors"]]
    assert ["feature_extractors", 0, "params", field] in locs, locs
    r = await client.get("/v1/namespaces")
    assert r.json()["results"] == []


async def test_hosted_only_fields_are_accepted_with_warnings(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/namespaces",
        json={
            **SEED_NAMESPACE,
            "namespace_type": "serverless",
            "payload_indexes": [{"field_name": "color", "type": "keyword"}],
            "auto_create_indexes": True,
        },
    )
    assert r.status_code == 200, r.text
    warnings = r.json()["warnings"]
    assert len(warnings) == 3
    for field in ("namespace_type", "payload_indexes", "auto_create_indexes"):
        assert any(field in w for w in warnings), (field, warnings)
    # The warnings belong to that one answer; the stored namespace carries none.
    r = await client.get("/v1/namespaces/production")
    assert r.status_code == 200 and r.json()["warnings"] == []


async def test_unknown_keys_are_422_naming_accepted_keys(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/namespaces", json={**SEED_NAMESPACE, "flavour": "vanilla"})
    err = assert_error(r, 422, "ValidationError")
    assert "flavour" in err["message"]
    for accepted in ("namespace_name", "feature_extractors", "description"):
        assert accepted in err["message"]
    # Inside an extractor reference too.
    r = await client.post(
        "/v1/namespaces",
        json={
            "namespace_name": "production",
            "feature_extractors": [{"feature_extractor_name": "text_extractor", "model": "x"}],
        },
    )
    err = assert_error(r, 422, "ValidationError")
    assert "model" in err["message"] and "feature_extractor_name" in err["message"]
    assert err["details"]["validation_errors"][0]["loc"][:2] == ["feature_extractors", 0]
    r = await client.get("/v1/namespaces")
    assert r.json()["results"] == []


@pytest.mark.parametrize("name", ["", "has space", "-leading-dash", "ns_0VcIutmKZTHswCExbAx2"])
async def test_bad_namespace_names_are_422(client: httpx.AsyncClient, name: str) -> None:
    r = await client.post("/v1/namespaces", json={"namespace_name": name})
    err = assert_error(r, 422, "ValidationError")
    assert err["details"]["validation_errors"][0]["loc"] == ["namespace_name"]


async def test_patch_namespace_description(client: httpx.AsyncClient) -> None:
    ns = await make_namespace(client, "production")
    r = await client.patch("/v1/namespaces/production", json={"description": "live traffic"})
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["namespace_id"] == ns["namespace_id"]
    assert patched["description"] == "live traffic"
    assert patched["feature_extractors"] == ns["feature_extractors"]
    assert patched["created_at"] == ns["created_at"]
    assert timestamp(patched["updated_at"]) >= timestamp(ns["updated_at"])

    r = await client.get(f"/v1/namespaces/{ns['namespace_id']}")
    assert r.json()["description"] == "live traffic"

    # An empty patch changes nothing; null clears.
    r = await client.patch(f"/v1/namespaces/{ns['namespace_id']}", json={})
    assert r.status_code == 200 and r.json()["description"] == "live traffic"
    r = await client.patch(f"/v1/namespaces/{ns['namespace_id']}", json={"description": None})
    assert r.status_code == 200 and r.json()["description"] is None

    # Only the description may change.
    r = await client.patch("/v1/namespaces/production", json={"namespace_name": "renamed"})
    err = assert_error(r, 422, "ValidationError")
    assert "namespace_name" in err["message"] and "description" in err["message"]
    r = await client.get("/v1/namespaces/production")
    assert r.status_code == 200

    r = await client.patch("/v1/namespaces/missing", json={"description": "x"})
    assert_error(r, 404, "NotFoundError")


async def test_list_namespaces_paginates_without_gaps_or_duplicates(
    client: httpx.AsyncClient,
) -> None:
    created = [(await make_namespace(client, f"ns-{i}"))["namespace_id"] for i in range(5)]
    pages = await collect_pages(client, "/v1/namespaces", limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    flat = [i for p in pages for i in p]
    assert len(flat) == len(set(flat)) == 5
    assert set(flat) == set(created)

    post_pages = await collect_post_pages(client, "/v1/namespaces/list", limit=2)
    assert post_pages == pages

    r = await client.get("/v1/namespaces")
    body = r.json()
    assert body["pagination"] == {"limit": 50, "next_cursor": None}
    assert {n["namespace_id"] for n in body["results"]} == set(created)
    assert all("namespace_name" in n and "feature_extractors" in n for n in body["results"])

    r = await client.get("/v1/namespaces", params={"cursor": "not-a-cursor!"})
    err = assert_error(r, 422, "ValidationError")
    assert err["details"]["validation_errors"][0]["loc"] == ["cursor"]
    for bad in (0, 1001):
        r = await client.get("/v1/namespaces", params={"limit": bad})
        assert_error(r, 422, "ValidationError")


async def test_namespace_counts(client: httpx.AsyncClient) -> None:
    await make_namespace(client, "production")
    bucket = await make_bucket(client, "production")
    for text in ("one", "two"):
        r = await client.post(
            f"/v1/buckets/{bucket['bucket_id']}/objects",
            headers={"X-Namespace": "production"},
            json={"blobs": [{"property": "product_text", "type": "text", "content": text}]},
        )
        assert r.status_code == 200, r.text
    await make_bucket(client, "production", "second")
    r = await client.get("/v1/namespaces/production")
    assert r.json()["bucket_count"] == 2 and r.json()["object_count"] == 2
    r = await client.get("/v1/namespaces")
    listed = r.json()["results"][0]
    assert listed["bucket_count"] == 2 and listed["object_count"] == 2


async def test_delete_namespace_then_404(client: httpx.AsyncClient, settings: Settings) -> None:
    ns = await make_namespace(client, "production")
    keep = await make_namespace(client, "staging")
    bucket = await make_bucket(client, "production")
    image = png_bytes("GONE")
    r = await client.post(
        f"/v1/buckets/{bucket['bucket_id']}/objects",
        headers={"X-Namespace": "production"},
        json={
            "blobs": [
                {"property": "product_text", "type": "text", "content": "bye"},
                {"property": "hero_image", "type": "image", "content": b64(image)},
            ]
        },
    )
    assert r.status_code == 200, r.text
    sha = next(b["sha256"] for b in r.json()["blobs"] if b["type"] == "image")
    assert stored_files(settings, sha), "the image bytes were not stored"

    r = await client.delete("/v1/namespaces/production")
    assert r.status_code == 200, r.text
    assert r.json()["namespace_id"] == ns["namespace_id"]
    assert r.json()["deleted"] is True

    for ident in (ns["namespace_id"], "production"):
        r = await client.get(f"/v1/namespaces/{ident}")
        err = assert_error(r, 404, "NotFoundError")
        assert ident in err["message"]
        r = await client.delete(f"/v1/namespaces/{ident}")
        assert_error(r, 404, "NotFoundError")
    r = await client.get(
        f"/v1/buckets/{bucket['bucket_id']}", headers={"X-Namespace": "production"}
    )
    assert_error(r, 404, "NotFoundError")
    r = await client.get("/v1/namespaces")
    assert [n["namespace_id"] for n in r.json()["results"]] == [keep["namespace_id"]]
    assert not stored_files(settings, sha), "the namespace's blob bytes are still stored"

    # The name is free again, and the new namespace starts empty.
    again = await make_namespace(client, "production")
    assert again["namespace_id"] != ns["namespace_id"]
    r = await client.get("/v1/buckets", headers={"X-Namespace": "production"})
    assert r.status_code == 200 and r.json()["results"] == []


def stored_files(settings: Settings, sha: str) -> list[Path]:
    return [p for p in settings.data_dir.rglob(f"*{sha}*") if p.is_file()]


# =========================================================================== buckets


async def test_create_bucket_with_every_type(client: httpx.AsyncClient) -> None:
    await make_namespace(client, "production")
    properties: dict[str, Any] = {
        f"{t}_prop": {"type": t, "description": f"a {t}"} for t in BLOB_TYPES + SCALAR_TYPES
    }
    properties["text_prop"]["required"] = True
    r = await client.post(
        "/v1/buckets",
        headers={"X-Namespace": "production"},
        json={
            "bucket_name": "everything",
            "description": "all types",
            "bucket_schema": {"properties": properties},
            "metadata": {"team": "search", "tier": 2},
        },
    )
    assert r.status_code == 200, r.text
    bucket = r.json()
    assert BKT_ID.match(bucket["bucket_id"])
    assert bucket["bucket_name"] == "everything"
    assert bucket["description"] == "all types"
    assert bucket["metadata"] == {"team": "search", "tier": 2}
    assert bucket["object_count"] == 0 and bucket["total_size_bytes"] == 0
    assert bucket["warnings"] == []
    timestamp(bucket["created_at"])
    got = bucket["bucket_schema"]["properties"]
    assert set(got) == set(properties)
    for name, spec in properties.items():
        assert got[name]["type"] == spec["type"]
        assert got[name]["description"] == spec["description"]
        assert bool(got[name].get("required", False)) == (name == "text_prop")

    r = await client.get(
        f"/v1/buckets/{bucket['bucket_id']}", headers={"X-Namespace": "production"}
    )
    assert r.status_code == 200 and r.json()["bucket_schema"] == bucket["bucket_schema"]


async def test_create_bucket_with_the_seed_body(client: httpx.AsyncClient) -> None:
    ns = await make_namespace(client, "production")
    r = await client.post(
        "/v1/buckets",
        headers={"X-Namespace": ns["namespace_id"]},
        json={"bucket_name": "product-catalog", "bucket_schema": SEED_SCHEMA},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bucket_name"] == "product-catalog"
    assert body["bucket_schema"]["properties"]["product_text"]["type"] == "text"
    assert body["bucket_schema"]["properties"]["product_text"]["required"] is True
    assert body["bucket_schema"]["properties"]["hero_image"]["type"] == "image"
    assert body["metadata"] == {}
    assert body["object_count"] == 0 and body["total_size_bytes"] == 0


@pytest.mark.parametrize(
    ("schema", "loc_head"),
    [
        ({"properties": {"a": {"type": "imagee"}}}, ["bucket_schema", "properties", "a", "type"]),
        ({"properties": {"a": {"type": 7}}}, ["bucket_schema", "properties", "a", "type"]),
        ({"properties": {"a": {}}}, ["bucket_schema", "properties", "a", "type"]),
        ({"properties": {"bad name": {"type": "text"}}}, ["bucket_schema", "properties"]),
        ({}, ["bucket_schema", "properties"]),
    ],
)
async def test_bad_bucket_schema_is_422(
    client: httpx.AsyncClient, schema: dict[str, Any], loc_head: list[Any]
) -> None:
    await make_namespace(client, "production")
    r = await client.post(
        "/v1/buckets",
        headers={"X-Namespace": "production"},
        json={"bucket_name": "b", "bucket_schema": schema},
    )
    err = assert_error(r, 422, "ValidationError")
    locs = [e["loc"] for e in err["details"]["validation_errors"]]
    assert any(loc[: len(loc_head)] == loc_head for loc in locs), locs
    r = await client.get("/v1/buckets", headers={"X-Namespace": "production"})
    assert r.json()["results"] == []


async def test_bucket_request_validation(client: httpx.AsyncClient) -> None:
    await make_namespace(client, "production")
    h = {"X-Namespace": "production"}
    r = await client.post(
        "/v1/buckets", headers=h, json={"bucket_name": "b", "bucket_schema": SEED_SCHEMA, "x": 1}
    )
    err = assert_error(r, 422, "ValidationError")
    assert "bucket_name" in err["message"] and "bucket_schema" in err["message"]
    r = await client.post("/v1/buckets", headers=h, json={"bucket_name": "b"})
    err = assert_error(r, 422, "ValidationError")
    assert err["details"]["validation_errors"][0]["loc"] == ["bucket_schema"]
    r = await client.post(
        "/v1/buckets",
        headers=h,
        json={"bucket_name": "bkt_0VcIutmKZTHswCExbAx2", "bucket_schema": SEED_SCHEMA},
    )
    err = assert_error(r, 422, "ValidationError")
    assert err["details"]["validation_errors"][0]["loc"] == ["bucket_name"]
    # The hosted spec's unique_key is accepted and reported.
    r = await client.post(
        "/v1/buckets",
        headers=h,
        json={"bucket_name": "b", "bucket_schema": SEED_SCHEMA, "unique_key": {"fields": ["sku"]}},
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["warnings"]) == 1 and "unique_key" in r.json()["warnings"][0]


async def test_duplicate_bucket_name_per_namespace(client: httpx.AsyncClient) -> None:
    await make_namespace(client, "production")
    await make_namespace(client, "staging")
    first = await make_bucket(client, "production", "catalog")
    r = await client.post(
        "/v1/buckets",
        headers={"X-Namespace": "production"},
        json={"bucket_name": "catalog", "bucket_schema": SEED_SCHEMA},
    )
    err = assert_error(r, 409, "AlreadyExistsError")
    assert "catalog" in err["message"]

    other = await make_bucket(client, "staging", "catalog")
    assert other["bucket_id"] != first["bucket_id"]
    for ns, expected in (("production", first), ("staging", other)):
        r = await client.get("/v1/buckets/catalog", headers={"X-Namespace": ns})
        assert r.status_code == 200 and r.json()["bucket_id"] == expected["bucket_id"]
        r = await client.get("/v1/buckets", headers={"X-Namespace": ns})
        assert [b["bucket_id"] for b in r.json()["results"]] == [expected["bucket_id"]]


async def test_get_bucket_by_id_and_name(client: httpx.AsyncClient) -> None:
    await make_namespace(client, "production")
    bucket = await make_bucket(client, "production")
    h = {"X-Namespace": "production"}
    by_id = await client.get(f"/v1/buckets/{bucket['bucket_id']}", headers=h)
    by_name = await client.get("/v1/buckets/product-catalog", headers=h)
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json()
    assert by_id.json()["bucket_id"] == bucket["bucket_id"]
    assert by_id.json()["bucket_schema"] == bucket["bucket_schema"]
    for ident in ("no-such-bucket", "bkt_0000000000000000000Z"):
        r = await client.get(f"/v1/buckets/{ident}", headers=h)
        err = assert_error(r, 404, "NotFoundError")
        assert ident in err["message"]


async def test_patch_bucket(client: httpx.AsyncClient) -> None:
    await make_namespace(client, "production")
    bucket = await make_bucket(client, "production", "catalog")
    await make_bucket(client, "production", "taken")
    h = {"X-Namespace": "production"}
    bkt = bucket["bucket_id"]

    r = await client.patch(f"/v1/buckets/{bkt}", headers=h, json={"bucket_name": "catalog-v2"})
    assert r.status_code == 200, r.text
    assert r.json()["bucket_id"] == bkt and r.json()["bucket_name"] == "catalog-v2"
    r = await client.get("/v1/buckets/catalog", headers=h)
    assert_error(r, 404, "NotFoundError")
    r = await client.get("/v1/buckets/catalog-v2", headers=h)
    assert r.status_code == 200 and r.json()["bucket_id"] == bkt

    r = await client.patch(
        "/v1/buckets/catalog-v2",
        headers=h,
        json={"description": "v2 products", "metadata": {"owner": "ana"}},
    )
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["description"] == "v2 products"
    assert patched["metadata"] == {"owner": "ana"}
    assert patched["bucket_name"] == "catalog-v2"
    assert patched["bucket_schema"] == bucket["bucket_schema"]
    assert timestamp(patched["updated_at"]) >= timestamp(bucket["updated_at"])

    # Metadata is replaced as a whole; fields left out stay as they are.
    r = await client.patch(f"/v1/buckets/{bkt}", headers=h, json={"metadata": {"owner": "bo"}})
    assert r.json()["metadata"] == {"owner": "bo"} and r.json()["description"] == "v2 products"

    r = await client.patch(f"/v1/buckets/{bkt}", headers=h, json={"bucket_name": "taken"})
    err = assert_error(r, 409, "AlreadyExistsError")
    assert "taken" in err["message"]
    r = await client.patch(f"/v1/buckets/{bkt}", headers=h, json={"bucket_schema": SEED_SCHEMA})
    assert_error(r, 422, "ValidationError")
    r = await client.patch(f"/v1/buckets/{bkt}", headers=h, json={"bucket_name": "bad name"})
    assert_error(r, 422, "ValidationError")
    r = await client.patch("/v1/buckets/missing", headers=h, json={"description": "x"})
    assert_error(r, 404, "NotFoundError")

    r = await client.get(f"/v1/buckets/{bkt}", headers=h)
    final = r.json()
    assert final["bucket_name"] == "catalog-v2"
    assert final["metadata"] == {"owner": "bo"}
    assert final["description"] == "v2 products"


async def test_list_buckets_paginates(client: httpx.AsyncClient) -> None:
    await make_namespace(client, "production")
    await make_namespace(client, "other")
    await make_bucket(client, "other", "elsewhere")
    created = [(await make_bucket(client, "production", f"b{i}"))["bucket_id"] for i in range(5)]
    h = {"X-Namespace": "production"}
    pages = await collect_pages(client, "/v1/buckets", limit=2, headers=h)
    assert [len(p) for p in pages] == [2, 2, 1]
    flat = [i for p in pages for i in p]
    assert len(flat) == len(set(flat)) == 5 and set(flat) == set(created)
    post_pages = await collect_post_pages(client, "/v1/buckets/list", limit=2, headers=h)
    assert post_pages == pages

    r = await client.get("/v1/buckets", headers=h)
    body = r.json()
    assert body["pagination"]["next_cursor"] is None
    assert {b["bucket_id"] for b in body["results"]} == set(created)
    for b in body["results"]:
        assert b["object_count"] == 0 and b["total_size_bytes"] == 0 and b["bucket_name"]


async def test_object_count_and_size_follow_objects(client: httpx.AsyncClient) -> None:
    await make_namespace(client, "production")
    bucket = await make_bucket(client, "production")
    h = {"X-Namespace": "production"}
    objects_url = f"/v1/buckets/{bucket['bucket_id']}/objects"

    async def stats() -> tuple[int, int]:
        r = await client.get(f"/v1/buckets/{bucket['bucket_id']}", headers=h)
        assert r.status_code == 200, r.text
        return r.json()["object_count"], r.json()["total_size_bytes"]

    text = "Wireless headphones"
    r = await client.post(
        objects_url,
        headers=h,
        json={"blobs": [{"property": "product_text", "type": "text", "content": text}]},
    )
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["blobs"][0]["size_bytes"] == len(text.encode())
    assert await stats() == (1, len(text.encode()))

    image = png_bytes("COUNT")
    r = await client.post(
        objects_url,
        headers=h,
        json={
            "blobs": [
                {"property": "product_text", "type": "text", "content": "Über-Kopfhörer"},
                {"property": "hero_image", "type": "image", "content": b64(image)},
            ]
        },
    )
    assert r.status_code == 200, r.text
    second = r.json()
    second_size = sum(b["size_bytes"] for b in second["blobs"])
    assert second_size == len("Über-Kopfhörer".encode()) + len(image)
    assert await stats() == (2, len(text.encode()) + second_size)

    # A refused object changes nothing.
    r = await client.post(
        objects_url,
        headers=h,
        json={"blobs": [{"property": "hero_image", "type": "image", "content": b64(image)}]},
    )
    assert_error(r, 422, "ValidationError")
    assert await stats() == (2, len(text.encode()) + second_size)

    r = await client.delete(f"{objects_url}/{first['object_id']}", headers=h)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert await stats() == (1, second_size)
    r = await client.get("/v1/buckets", headers=h)
    assert r.json()["results"][0]["object_count"] == 1
    assert r.json()["results"][0]["total_size_bytes"] == second_size

    r = await client.delete(f"{objects_url}/{second['object_id']}", headers=h)
    assert r.status_code == 204, r.text
    assert await stats() == (0, 0)


async def test_delete_bucket_removes_its_objects(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await make_namespace(client, "production")
    bucket = await make_bucket(client, "production")
    keep = await make_bucket(client, "production", "keep")
    h = {"X-Namespace": "production"}
    bkt = bucket["bucket_id"]
    image = png_bytes("BUCKET")
    r = await client.post(
        f"/v1/buckets/{bkt}/objects",
        headers=h,
        json={
            "blobs": [
                {"property": "product_text", "type": "text", "content": "in the doomed bucket"},
                {"property": "hero_image", "type": "image", "content": b64(image)},
            ]
        },
    )
    assert r.status_code == 200, r.text
    obj = r.json()
    image_blob = next(b for b in obj["blobs"] if b["type"] == "image")
    r = await client.post(
        f"/v1/buckets/{keep['bucket_id']}/objects",
        headers=h,
        json={"blobs": [{"property": "product_text", "type": "text", "content": "survivor"}]},
    )
    assert r.status_code == 200, r.text
    survivor = r.json()
    assert stored_files(settings, image_blob["sha256"])

    r = await client.delete("/v1/buckets/product-catalog", headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"bucket_id": bkt, "deleted": True}

    r = await client.get(f"/v1/buckets/{bkt}", headers=h)
    assert_error(r, 404, "NotFoundError")
    r = await client.get(f"/v1/buckets/{bkt}/objects/{obj['object_id']}", headers=h)
    assert_error(r, 404, "NotFoundError")
    r = await client.delete(f"/v1/buckets/{bkt}", headers=h)
    assert_error(r, 404, "NotFoundError")
    r = await client.get("/v1/namespaces/production")
    assert r.json()["bucket_count"] == 1 and r.json()["object_count"] == 1
    assert not stored_files(settings, image_blob["sha256"]), "orphaned blob bytes left behind"

    # A new bucket of the same name does not inherit the old objects.
    fresh = await make_bucket(client, "production")
    r = await client.get(f"/v1/buckets/{fresh['bucket_id']}/objects", headers=h)
    assert r.status_code == 200 and r.json()["results"] == []
    r = await client.get(f"/v1/buckets/product-catalog/objects/{obj['object_id']}", headers=h)
    assert_error(r, 404, "NotFoundError")
    r = await client.get(f"/v1/buckets/{fresh['bucket_id']}", headers=h)
    assert r.json()["object_count"] == 0 and r.json()["total_size_bytes"] == 0

    # The other bucket is untouched.
    url = f"/v1/buckets/keep/objects/{survivor['object_id']}"
    r = await client.get(f"{url}/blobs/{survivor['blobs'][0]['blob_id']}/content", headers=h)
    assert r.status_code == 200 and r.content == b"survivor"
