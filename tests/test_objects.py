"""Objects over the real app (ASGI, SQLite, local blob store): registration, schema checks,
get/delete, blob downloads with Range, the batch route and content-addressed dedup.

URL blobs are served by a real `ThreadingHTTPServer` on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from assay.config import Settings
from tests.conftest import (
    ADMIN_KEY,
    Origin,
    b64,
    make_bucket,
    make_namespace,
    open_client,
    png_bytes,
)

PNG = png_bytes("HERO", (120, 60))
SEED_TEXT = "Wireless headphones"


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 40), (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


JPEG = jpeg_bytes()


# --------------------------------------------------------------------------- app clients
# One app per module and setting (start-up runs the migrations); each test gets its own
# namespace and bucket, so tests stay independent. Everything runs on the module's loop.

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Private and loopback blob URLs are refused; every blob goes to the file store, whose
    files these tests inspect (small blobs kept in the database are covered elsewhere)."""
    return Settings(
        data_dir=tmp_path_factory.mktemp("objects") / "data",
        admin_key=ADMIN_KEY,
        small_blob_max_bytes=0,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client(settings) as c:
        yield c


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pclient(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """Blob URLs may reach loopback (ASSAY_ALLOW_PRIVATE_URLS=1)."""
    data_dir = tmp_path_factory.mktemp("objects-private") / "data"
    open_settings = Settings(data_dir=data_dir, admin_key=ADMIN_KEY, allow_private_urls=True)
    async with open_client(open_settings) as c:
        yield c


class Api:
    """One namespace and bucket, with short helpers for the object routes."""

    def __init__(self, client: httpx.AsyncClient, ns: dict[str, Any], bucket: dict[str, Any]):
        self.client = client
        self.ns_id: str = ns["namespace_id"]
        self.bucket_id: str = bucket["bucket_id"]
        self.h = {"X-Namespace": self.ns_id}
        self.base = f"/v1/buckets/{self.bucket_id}/objects"

    async def create(self, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(self.base, json=body, headers=self.h)

    async def batch(self, objects: list[dict[str, Any]]) -> httpx.Response:
        return await self.client.post(
            self.base + "/batch", json={"objects": objects}, headers=self.h
        )

    async def get(self, object_id: str) -> httpx.Response:
        return await self.client.get(f"{self.base}/{object_id}", headers=self.h)

    async def delete(self, object_id: str) -> httpx.Response:
        return await self.client.delete(f"{self.base}/{object_id}", headers=self.h)

    async def content(self, obj: dict[str, Any], i: int = 0, **headers: str) -> httpx.Response:
        url = f"{self.base}/{obj['object_id']}/blobs/{obj['blobs'][i]['blob_id']}/content"
        return await self.client.get(url, headers={**self.h, **headers})

    async def bucket(self) -> dict[str, Any]:
        r = await self.client.get(f"/v1/buckets/{self.bucket_id}", headers=self.h)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def listed_ids(self) -> list[str]:
        r = await self.client.get(self.base, params={"limit": 1000}, headers=self.h)
        assert r.status_code == 200, r.text
        return [o["object_id"] for o in r.json()["results"]]


async def fresh_namespace(client: httpx.AsyncClient) -> dict[str, Any]:
    return await make_namespace(client, name=f"ns-{uuid.uuid4().hex[:12]}")


async def make_api(client: httpx.AsyncClient, schema: dict[str, Any] | None = None) -> Api:
    ns = await fresh_namespace(client)
    bucket = await make_bucket(client, ns["namespace_id"], schema=schema)
    return Api(client, ns, bucket)


@pytest_asyncio.fixture(loop_scope="module")
async def api(client: httpx.AsyncClient) -> Api:
    return await make_api(client)


@pytest_asyncio.fixture(loop_scope="module")
async def papi(pclient: httpx.AsyncClient) -> Api:
    return await make_api(pclient)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seed_body(url: str) -> dict[str, Any]:
    """The seed document's registration body, verbatim but for the image URL."""
    return {
        "key_prefix": "/products",
        "blobs": [
            {"property": "hero_image", "type": "image", "url": url},
            {"property": "product_text", "type": "text", "content": SEED_TEXT},
        ],
    }


def text_blob(text: str = SEED_TEXT) -> dict[str, Any]:
    return {"property": "product_text", "type": "text", "content": text}


def image_blob(data: bytes = PNG) -> dict[str, Any]:
    return {"property": "hero_image", "type": "image", "content": b64(data)}


def assert_422(r: httpx.Response, loc: list[Any], msg_part: str = "") -> dict[str, Any]:
    """A 422 in the API's envelope whose first validation error is at `loc`."""
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["success"] is False and body["status"] == 422
    assert body["error"]["type"] == "ValidationError"
    first = body["error"]["details"]["validation_errors"][0]
    assert first["loc"] == loc, first
    if msg_part:
        assert msg_part.lower() in (first["msg"] + body["error"]["message"]).lower(), first
    return dict(first)


def blob_file(settings: Settings, ns_id: str, digest: str) -> Path:
    """Where the local blob store keeps content-addressed bytes."""
    return settings.data_dir / "blobs" / ns_id / digest[:2] / digest


# --------------------------------------------------------------------------- the seed's body


@pytest.mark.parametrize(
    ("path", "data", "served_as", "expected_type"),
    [
        ("/photo.png", PNG, "image/png", "image/png"),
        ("/photo.jpg", JPEG, "image/jpeg", "image/jpeg"),
        ("/photo", PNG, "application/octet-stream", "image/png"),
        ("/mislabelled.jpg", PNG, "image/jpeg", "image/png"),
    ],
)
async def test_seed_registration_fetches_url_and_stores_content(
    papi: Api, origin: Origin, path: str, data: bytes, served_as: str, expected_type: str
) -> None:
    url = origin.serve(path, data, served_as)

    r = await papi.create(seed_body(url))

    assert r.status_code == 200, r.text
    obj = r.json()
    assert obj["object_id"].startswith("obj_")
    assert obj["bucket_id"] == papi.bucket_id
    assert obj["key_prefix"] == "/products"
    assert obj["status"] == "DRAFT"
    assert obj["warnings"] == []
    hero, text = obj["blobs"]
    assert hero["property"] == "hero_image" and hero["type"] == "image"
    assert hero["blob_id"].startswith("blob_")
    assert hero["sha256"] == sha(data)
    assert hero["size_bytes"] == len(data)
    assert hero["content_type"] == expected_type
    assert hero["url"] == url
    assert text["property"] == "product_text" and text["type"] == "text"
    assert text["sha256"] == sha(SEED_TEXT.encode())
    assert text["size_bytes"] == len(SEED_TEXT.encode())
    assert text["content_type"].startswith("text/plain")
    assert origin.hits == [path]

    bucket = await papi.bucket()
    assert bucket["object_count"] == 1
    assert bucket["total_size_bytes"] == len(data) + len(SEED_TEXT.encode())
    dl = await papi.content(obj, 0)
    assert dl.status_code == 200 and dl.content == data


async def test_seed_registration_private_url_refused_by_default(
    api: Api, origin: Origin, settings: Settings
) -> None:
    assert settings.allow_private_urls is False
    url = origin.serve("/photo.png", PNG, "image/png")

    r = await api.create(seed_body(url))

    assert_422(r, ["blobs", 0, "url"], "not allowed")
    assert origin.hits == []  # refused before any connection
    bucket = await api.bucket()
    assert (bucket["object_count"], bucket["total_size_bytes"]) == (0, 0)
    assert await api.listed_ids() == []


# --------------------------------------------------------------------------- `data` and `content`

FORMS_SCHEMA = {
    "properties": {
        "img": {"type": "image"},
        "txt": {"type": "text"},
        "doc": {"type": "json"},
    }
}


def _blob(prop: str, kind: str, **source: Any) -> dict[str, Any]:
    return {"property": prop, "type": kind, **source}


def _data_forms(base: str) -> list[tuple[str, dict[str, Any], bytes, str]]:
    """(name, blob, the bytes it should store, expected content type prefix)."""
    doc = {"a": [1, 2, 3], "b": {"c": "é"}}
    doc_bytes = json.dumps(doc, ensure_ascii=False).encode()
    png_obj = {"base64": b64(PNG), "mime_type": "image/png", "filename": "hero.png"}
    json_uri = "data:application/json;base64," + b64(b'{"k": 1}')
    boxed = "boxed wörds"
    param_uri = "data:image/png;name=hero.png;base64," + b64(PNG)
    return [
        ("url-string", _blob("img", "image", data=base + "/p.png"), PNG, "image/png"),
        (
            "data-uri",
            _blob("img", "image", data="data:image/png;base64," + b64(PNG)),
            PNG,
            "image/png",
        ),
        ("base64-object", _blob("img", "image", data=png_obj), PNG, "image/png"),
        ("url-object", _blob("img", "image", data={"url": base + "/p.png"}), PNG, "image/png"),
        ("text-string", _blob("txt", "text", data="plain words"), b"plain words", "text/"),
        ("text-object", _blob("txt", "text", data={"text": boxed}), boxed.encode(), "text/"),
        ("data-raw-base64", _blob("img", "image", data=b64(PNG)), PNG, "image/png"),
        ("data-uri-with-params", _blob("img", "image", data=param_uri), PNG, "image/png"),
        ("json-inline", _blob("doc", "json", data=doc), doc_bytes, "application/json"),
        ("json-data-uri", _blob("doc", "json", data=json_uri), b'{"k": 1}', "application/json"),
        ("content-base64-image", _blob("img", "image", content=b64(PNG)), PNG, "image/png"),
        ("content-json-value", _blob("doc", "json", content=doc), doc_bytes, "application/json"),
    ]


FORM_NAMES = [name for name, *_ in _data_forms("http://x")]


@pytest.mark.parametrize("form", FORM_NAMES)
async def test_every_blob_data_form_registers_and_round_trips(
    pclient: httpx.AsyncClient, origin: Origin, form: str
) -> None:
    origin.serve("/p.png", PNG, "image/png")
    api = await make_api(pclient, FORMS_SCHEMA)
    _, blob, expected, type_prefix = next(f for f in _data_forms(origin.base) if f[0] == form)

    r = await api.create({"blobs": [blob]})

    assert r.status_code == 200, r.text
    out = r.json()["blobs"][0]
    assert out["property"] == blob["property"] and out["type"] == blob["type"]
    dl = await api.content(r.json(), 0)
    assert dl.status_code == 200
    assert dl.content == expected, "stored bytes differ from the bytes given"
    assert out["sha256"] == sha(expected)
    assert out["size_bytes"] == len(expected)
    assert out["content_type"].startswith(type_prefix)
    if form == "base64-object":
        assert out["filename"] == "hero.png"


# --------------------------------------------------------------------------- exactly one source


@pytest.mark.parametrize(
    ("sources", "msg_part"),
    [
        ({}, "exactly one"),
        ({"url": "https://example.com/a.png", "content": b64(PNG)}, "got url, content"),
        ({"content": b64(PNG), "data": b64(PNG)}, "got content, data"),
    ],
    ids=["none", "url+content", "content+data"],
)
async def test_blob_needs_exactly_one_source(
    api: Api, sources: dict[str, Any], msg_part: str
) -> None:
    r = await api.create(
        {"blobs": [text_blob(), {"property": "hero_image", "type": "image", **sources}]}
    )
    assert_422(r, ["blobs", 1], msg_part)
    assert await api.listed_ids() == []


async def test_upload_id_points_to_the_confirm_route(api: Api) -> None:
    r = await api.create(
        {"blobs": [{"property": "hero_image", "type": "image", "upload_id": "upl_x"}, text_blob()]}
    )
    err = assert_422(r, ["blobs", 0, "upload_id"], "/confirm")
    assert err["type"] == "not_supported"
    assert await api.listed_ids() == []


async def test_s3_url_is_refused_without_an_s3_store(api: Api) -> None:
    r = await api.create(
        {
            "blobs": [
                {"property": "hero_image", "type": "image", "url": "s3://my-bucket/a.png"},
                text_blob(),
            ]
        }
    )
    assert_422(r, ["blobs", 0, "url"], "s3")
    assert await api.listed_ids() == []


# --------------------------------------------------------------------------- schema checks


@pytest.mark.parametrize(
    ("blobs", "loc", "err_type", "msg_part"),
    [
        (
            [text_blob(), {"property": "colour", "type": "image", "content": b64(PNG)}],
            ["blobs", 1, "property"],
            "unknown_property",
            "colour",
        ),
        (
            [{"property": "hero_image", "type": "text", "content": "x"}, text_blob()],
            ["blobs", 0, "type"],
            "type_mismatch",
            "image",
        ),
        ([image_blob()], ["blobs"], "missing_property", "product_text"),
        (
            [text_blob(), text_blob("again")],
            ["blobs", 1, "property"],
            "duplicate_property",
            "twice",
        ),
    ],
    ids=["unknown-property", "wrong-type", "missing-required", "duplicate-property"],
)
async def test_schema_violations_name_the_blob(
    api: Api, blobs: list[dict[str, Any]], loc: list[Any], err_type: str, msg_part: str
) -> None:
    r = await api.create({"blobs": blobs})
    err = assert_422(r, loc, msg_part)
    assert err["type"] == err_type
    assert (await api.bucket())["object_count"] == 0


SCALAR_SCHEMA = {
    "properties": {
        "product_text": {"type": "text", "required": True},
        "size": {"type": "integer"},
        "price": {"type": "number"},
        "in_stock": {"type": "boolean"},
        "launch": {"type": "date"},
        "sku": {"type": "string"},
    }
}


@pytest.mark.parametrize(
    ("prop", "kind", "value"),
    [
        ("size", "integer", "big"),
        ("size", "integer", True),
        ("size", "integer", 1.5),
        ("price", "number", "1.5"),
        ("in_stock", "boolean", 1),
        ("launch", "date", "next tuesday"),
        ("sku", "string", 5),
    ],
)
async def test_scalar_property_of_wrong_type_is_422(
    client: httpx.AsyncClient, prop: str, kind: str, value: Any
) -> None:
    api = await make_api(client, SCALAR_SCHEMA)
    r = await api.create(
        {"blobs": [text_blob(), {"property": prop, "type": kind, "content": value}]}
    )
    err = assert_422(r, ["blobs", 1], kind)
    assert err["type"] == "type_mismatch"
    assert await api.listed_ids() == []


async def test_scalar_properties_are_stored_as_values(client: httpx.AsyncClient) -> None:
    api = await make_api(client, SCALAR_SCHEMA)
    values = {"size": 42, "price": 9.5, "in_stock": True, "launch": "2024-05-01", "sku": "A-1"}
    kinds = {k: v["type"] for k, v in SCALAR_SCHEMA["properties"].items()}
    blobs = [text_blob()] + [
        {"property": k, "type": kinds[k], "content": v} for k, v in values.items()
    ]
    r = await api.create({"blobs": blobs})
    assert r.status_code == 200, r.text
    obj = r.json()
    assert obj["properties"] == values
    assert [b["property"] for b in obj["blobs"]] == ["product_text"]
    again = await api.get(obj["object_id"])
    assert again.status_code == 200 and again.json()["properties"] == values


async def test_hosted_only_fields_are_accepted_with_warnings(api: Api) -> None:
    r = await api.create(
        {
            "skip_duplicates": True,
            "blobs": [{**text_blob(), "canonicalize_source": True}],
        }
    )
    assert r.status_code == 200, r.text
    warnings = r.json()["warnings"]
    assert any("skip_duplicates" in w for w in warnings), warnings
    assert any("canonicalize_source" in w and "blobs[0]" in w for w in warnings), warnings
    assert len(warnings) == 2


@pytest.mark.parametrize(
    ("body", "loc", "named"),
    [
        ({"blobs": [text_blob()], "colour": "red"}, [], "colour"),
        ({"blobs": [{**text_blob(), "colour": "red"}]}, ["blobs", 0], "colour"),
    ],
    ids=["object-level", "blob-level"],
)
async def test_unknown_key_is_422_naming_accepted_keys(
    api: Api, body: dict[str, Any], loc: list[Any], named: str
) -> None:
    r = await api.create(body)
    err = assert_422(r, loc, named)
    assert err["type"] == "unknown_field"
    assert "accepted:" in err["msg"] and "blobs" in r.json()["error"]["message"] + err["msg"]
    assert await api.listed_ids() == []


# --------------------------------------------------------------------------- get and delete


async def test_get_then_delete_object(api: Api, settings: Settings) -> None:
    keep = await api.create({"key_prefix": "/keep", "blobs": [text_blob("kept")]})
    gone = await api.create({"key_prefix": "/gone", "blobs": [text_blob("doomed"), image_blob()]})
    assert keep.status_code == 200 and gone.status_code == 200, (keep.text, gone.text)
    obj = gone.json()
    before = await api.bucket()
    assert before["object_count"] == 2
    assert before["total_size_bytes"] == len(b"kept") + len(b"doomed") + len(PNG)

    got = await api.get(obj["object_id"])
    assert got.status_code == 200, got.text
    fetched = got.json()
    for key in ("object_id", "bucket_id", "key_prefix", "status", "blobs", "metadata"):
        assert fetched[key] == obj[key], key

    image_path = blob_file(settings, api.ns_id, sha(PNG))
    assert image_path.is_file()

    d = await api.delete(obj["object_id"])
    assert d.status_code == 204, d.text
    assert d.content == b""

    missing = await api.get(obj["object_id"])
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "NotFoundError"
    assert obj["object_id"] in missing.json()["error"]["message"]
    dl = await api.content(obj, 1)
    assert dl.status_code == 404 and dl.json()["error"]["type"] == "NotFoundError"
    assert not image_path.exists(), "deleted object's bytes are still in the blob store"
    assert not blob_file(settings, api.ns_id, sha(b"doomed")).exists()

    after = await api.bucket()
    assert after["object_count"] == 1
    assert after["total_size_bytes"] == len(b"kept")
    assert await api.listed_ids() == [keep.json()["object_id"]]

    again = await api.delete(obj["object_id"])
    assert again.status_code == 404 and again.json()["error"]["type"] == "NotFoundError"


# --------------------------------------------------------------------------- downloads


async def test_blob_download_whole_and_ranges(api: Api) -> None:
    r = await api.create({"blobs": [text_blob(), image_blob()]})
    assert r.status_code == 200, r.text
    obj = r.json()
    n = len(PNG)
    etag = f'"{sha(PNG)}"'

    whole = await api.content(obj, 1)
    assert whole.status_code == 200
    assert whole.content == PNG
    assert whole.headers["etag"] == etag
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "image/png"
    assert int(whole.headers["content-length"]) == n

    head = await api.content(obj, 1, Range="bytes=0-3")
    assert head.status_code == 206
    assert head.headers["content-range"] == f"bytes 0-3/{n}"
    assert head.content == PNG[:4] == b"\x89PNG"
    assert head.headers["content-length"] == "4"
    assert head.headers["etag"] == etag

    suffix = await api.content(obj, 1, Range="bytes=-5")
    assert suffix.status_code == 206
    assert suffix.headers["content-range"] == f"bytes {n - 5}-{n - 1}/{n}"
    assert suffix.content == PNG[-5:]

    tail = await api.content(obj, 1, Range="bytes=10-")
    assert tail.status_code == 206
    assert tail.headers["content-range"] == f"bytes 10-{n - 1}/{n}"
    assert tail.content == PNG[10:]

    past_end = await api.content(obj, 1, Range="bytes=5-999999")
    assert past_end.status_code == 206
    assert past_end.headers["content-range"] == f"bytes 5-{n - 1}/{n}"
    assert past_end.content == PNG[5:]

    for bad in (f"bytes={n}-", f"bytes={n + 100}-{n + 200}"):
        out = await api.content(obj, 1, Range=bad)
        assert out.status_code == 416, bad
        assert out.headers["content-range"] == f"bytes */{n}"
        assert out.content != PNG

    text = await api.content(obj, 0)
    assert text.status_code == 200 and text.content == SEED_TEXT.encode()
    assert text.headers["content-type"].startswith("text/plain")


async def test_download_of_unknown_blob_is_404(api: Api) -> None:
    r = await api.create({"blobs": [text_blob()]})
    assert r.status_code == 200, r.text
    obj = r.json()
    url = f"{api.base}/{obj['object_id']}/blobs/blob_00000000000000000000/content"
    out = await api.client.get(url, headers=api.h)
    assert out.status_code == 404
    assert out.json()["error"]["type"] == "NotFoundError"


# --------------------------------------------------------------------------- batch


async def test_batch_partial_success(api: Api) -> None:
    objects = [
        {"key_prefix": "/b/0", "blobs": [text_blob("zero")]},
        {"blobs": [text_blob(), {"property": "nope", "type": "image", "content": b64(PNG)}]},
        {"key_prefix": "/b/2", "blobs": [text_blob("two"), image_blob()]},
        {"blobs": [image_blob()]},
        {"key_prefix": "/b/4", "blobs": [text_blob("four")]},
    ]

    r = await api.batch(objects)

    assert r.status_code == 200, r.text
    out = r.json()
    assert out["succeeded_count"] == 3 and out["failed_count"] == 2
    assert [o["key_prefix"] for o in out["succeeded"]] == ["/b/0", "/b/2", "/b/4"]
    assert all(o["status"] == "DRAFT" and o["bucket_id"] == api.bucket_id for o in out["succeeded"])
    assert [f["index"] for f in out["failed"]] == [1, 3]
    for f in out["failed"]:
        assert f["error_type"] == "ValidationError" and f["object_index"] == f["index"]
    loc1 = out["failed"][0]["details"]["validation_errors"][0]["loc"]
    loc3 = out["failed"][1]["details"]["validation_errors"][0]["loc"]
    assert loc1 == ["objects", 1, "blobs", 1, "property"]
    assert loc3 == ["objects", 3, "blobs"]
    assert "product_text" in out["failed"][1]["error"]

    bucket = await api.bucket()
    assert bucket["object_count"] == 3
    assert bucket["total_size_bytes"] == len(b"zero") + len(b"two") + len(PNG) + len(b"four")
    assert sorted(await api.listed_ids()) == sorted(o["object_id"] for o in out["succeeded"])


async def test_batch_over_100_objects_is_422(api: Api) -> None:
    r = await api.batch([{"blobs": [text_blob(f"t{i}")]} for i in range(101)])
    assert_422(r, ["objects"], "100")
    assert (await api.bucket())["object_count"] == 0


async def test_batch_of_exactly_100_is_accepted(api: Api) -> None:
    r = await api.batch([{"blobs": [text_blob(f"t{i}")]} for i in range(100)])
    assert r.status_code == 200, r.text
    assert r.json()["succeeded_count"] == 100 and r.json()["failed_count"] == 0
    assert (await api.bucket())["object_count"] == 100


# --------------------------------------------------------------------------- dedup


async def test_identical_content_is_stored_once_and_survives_one_delete(
    api: Api, settings: Settings
) -> None:
    a = await api.create({"blobs": [text_blob("same words"), image_blob()]})
    b = await api.create({"blobs": [text_blob("same words"), image_blob()]})
    assert a.status_code == 200 and b.status_code == 200, (a.text, b.text)
    oa, ob = a.json(), b.json()
    assert oa["object_id"] != ob["object_id"]
    assert oa["blobs"][1]["blob_id"] != ob["blobs"][1]["blob_id"]
    assert oa["blobs"][1]["sha256"] == ob["blobs"][1]["sha256"] == sha(PNG)
    assert oa["blobs"][0]["sha256"] == ob["blobs"][0]["sha256"]
    png_path = blob_file(settings, api.ns_id, sha(PNG))
    store = settings.data_dir / "blobs" / api.ns_id
    assert sorted(p.name for p in store.rglob("*") if p.is_file()) == sorted(
        [sha(PNG), sha(b"same words")]
    )

    d = await api.delete(oa["object_id"])
    assert d.status_code == 204, d.text
    assert png_path.is_file(), "shared bytes were deleted while another object uses them"
    for i, expected in ((0, b"same words"), (1, PNG)):
        dl = await api.content(ob, i)
        assert dl.status_code == 200 and dl.content == expected

    d = await api.delete(ob["object_id"])
    assert d.status_code == 204, d.text
    assert not png_path.exists(), "bytes nobody references were left behind"


async def test_base64_payload_is_decoded_strictly(api: Api) -> None:
    r = await api.create({"blobs": [text_blob(), {**image_blob(), "content": "%%%not base64%%%"}]})
    assert_422(r, ["blobs", 1, "content"], "base64")
    padded = base64.b64encode(PNG).decode()
    ok = await api.create({"blobs": [text_blob(), {**image_blob(), "content": padded}]})
    assert ok.status_code == 200, ok.text


async def test_text_content_must_be_a_string(api: Api) -> None:
    r = await api.create({"blobs": [{"property": "product_text", "type": "text", "content": 42}]})
    assert_422(r, ["blobs", 0, "content"], "string")
    assert await api.listed_ids() == []


async def test_empty_text_blob_downloads_empty(api: Api) -> None:
    r = await api.create({"blobs": [text_blob("")]})
    assert r.status_code == 200, r.text
    out = r.json()["blobs"][0]
    assert out["size_bytes"] == 0 and out["sha256"] == sha(b"")
    dl = await api.content(r.json(), 0)
    assert dl.status_code == 200 and dl.content == b""
    assert dl.headers["content-length"] == "0"
    ranged = await api.content(r.json(), 0, Range="bytes=0-0")
    assert ranged.status_code == 416 and ranged.headers["content-range"] == "bytes */0"


async def test_objects_are_scoped_to_their_bucket(client: httpx.AsyncClient) -> None:
    ns = await fresh_namespace(client)
    first = await make_bucket(client, ns["namespace_id"], name="first")
    second = await make_bucket(client, ns["namespace_id"], name="second")
    a, b = Api(client, ns, first), Api(client, ns, second)
    r = await a.create({"blobs": [text_blob("only in first")]})
    assert r.status_code == 200, r.text
    obj = r.json()

    wrong = await b.get(obj["object_id"])
    assert wrong.status_code == 404 and wrong.json()["error"]["type"] == "NotFoundError"
    dl = await b.content(obj, 0)
    assert dl.status_code == 404 and dl.json()["error"]["type"] == "NotFoundError"
    gone = await b.delete(obj["object_id"])
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "NotFoundError"
    assert await b.listed_ids() == []

    by_name = await client.get(f"/v1/buckets/first/objects/{obj['object_id']}", headers=a.h)
    assert by_name.status_code == 200 and by_name.json()["object_id"] == obj["object_id"]
    assert (await a.get(obj["object_id"])).status_code == 200
    assert (await a.bucket())["object_count"] == 1
    assert (await b.bucket())["object_count"] == 0
