"""Direct uploads: signed PUT URLs, streaming, confirm, duplicates, multipart, bad input."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from assay.config import Settings
from assay.errors import PayloadTooLarge
from assay.kit import signing
from assay.uploads.desk import BLOCK, _stream_to_file
from tests.conftest import ADMIN_KEY, LiveServer, make_bucket, make_namespace, png_bytes

NS = {"X-Namespace": "production"}
UPLOADS = "/v1/buckets/product-catalog/uploads"


async def _ready(client: httpx.AsyncClient) -> None:
    await make_namespace(client)
    await make_bucket(client, "production")


async def _create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    payload = {"filename": "photo.png", "content_type": "image/png", **body}
    r = await client.post(UPLOADS, headers=NS, json=payload)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _leftovers(settings: Settings) -> list[Path]:
    folder = settings.tmp_dir / "uploads"
    return list(folder.iterdir()) if folder.is_dir() else []


async def _count(client: httpx.AsyncClient) -> int:
    return int((await client.get("/v1/buckets/product-catalog", headers=NS)).json()["object_count"])


async def test_the_seed_flow_put_then_confirm_registers_the_object(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await _ready(client)
    data = png_bytes("UPLOAD")
    up = await _create(client)
    assert up["status"] == "PENDING" and up["blob_property"] == "hero_image"
    assert up["presigned_url"].startswith("http://assay.test/v1/uploads/")
    put = await client.put(up["presigned_url"], content=data, headers={"Authorization": ""})
    assert put.status_code == 200 and put.json()["sha256"] == hashlib.sha256(data).hexdigest()

    first = await client.post(f"{UPLOADS}/{up['upload_id']}/confirm", headers=NS)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "COMPLETED" and first.json()["duplicate"] is False
    again = await client.post(f"{UPLOADS}/{up['upload_id']}/confirm", headers=NS)
    assert again.json() == first.json()

    obj_id = first.json()["object_id"]
    obj = (await client.get(f"/v1/buckets/product-catalog/objects/{obj_id}", headers=NS)).json()
    (blob,) = obj["blobs"]
    assert blob["property"] == "hero_image" and blob["content_type"] == "image/png"
    url = f"/v1/buckets/product-catalog/objects/{obj_id}/blobs/{blob['blob_id']}/content"
    assert (await client.get(url, headers=NS)).content == data
    got = (await client.get(f"{UPLOADS}/{up['upload_id']}", headers=NS)).json()
    assert got["status"] == "COMPLETED" and got["object_id"] == obj_id
    assert _leftovers(settings) == []


async def test_tampered_and_expired_urls_are_403(client: httpx.AsyncClient) -> None:
    await _ready(client)
    up = await _create(client)
    tampered = up["presigned_url"][:-3] + (
        "AAA" if not up["presigned_url"].endswith("AAA") else "BBB"
    )
    r = await client.put(tampered, content=b"x")
    assert r.status_code == 403 and r.json()["error"]["type"] == "ForbiddenError"
    key = client._transport.app.state.ctx.signing_key  # type: ignore[attr-defined]
    claims = {"u": up["upload_id"], "b": up["bucket_id"], "p": 0, "s": None}
    expired = signing.sign(key, claims, ttl_s=-1)
    r = await client.put(f"/v1/uploads/{expired}", content=b"x")
    assert r.status_code == 403 and "expired" in r.json()["error"]["message"]


async def test_more_than_declared_is_413_and_nothing_is_left(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await _ready(client)
    up = await _create(client, file_size_bytes=10)
    r = await client.put(up["presigned_url"], content=b"x" * 11)
    assert r.status_code == 413 and r.json()["error"]["type"] == "PayloadTooLargeError"
    assert _leftovers(settings) == []
    r = await client.post(f"{UPLOADS}/{up['upload_id']}/confirm", headers=NS)
    assert r.status_code == 409  # nothing was received


async def test_confirm_before_put_is_409_and_hash_mismatch_registers_nothing(
    client: httpx.AsyncClient,
) -> None:
    await _ready(client)
    up = await _create(client)
    r = await client.post(f"{UPLOADS}/{up['upload_id']}/confirm", headers=NS)
    assert r.status_code == 409 and r.json()["error"]["type"] == "ConflictError"
    await client.put(up["presigned_url"], content=png_bytes())
    wrong = {"file_hash": "0" * 64}
    r = await client.post(f"{UPLOADS}/{up['upload_id']}/confirm", headers=NS, json=wrong)
    assert r.status_code == 422 and r.json()["error"]["details"]["validation_errors"][0]["loc"] == [
        "file_hash"
    ]
    assert await _count(client) == 0


async def test_content_that_is_not_its_type_is_refused_at_confirm(
    client: httpx.AsyncClient,
) -> None:
    await _ready(client)
    up = await _create(client)
    await client.put(up["presigned_url"], content=os.urandom(500))
    r = await client.post(f"{UPLOADS}/{up['upload_id']}/confirm", headers=NS)
    assert r.status_code == 422 and "image" in r.json()["error"]["message"]
    assert await _count(client) == 0


async def test_duplicates_are_reported_not_stored_twice(client: httpx.AsyncClient) -> None:
    await _ready(client)
    data = png_bytes("SAME")
    ids = []
    for body in ({}, {}, {"skip_duplicates": False}):
        up = await _create(client, file_hash=hashlib.sha256(data).hexdigest(), **body)
        await client.put(up["presigned_url"], content=data)
        r = await client.post(f"{UPLOADS}/{up['upload_id']}/confirm", headers=NS)
        assert r.status_code == 200, r.text
        ids.append(r.json())
    assert ids[1]["duplicate"] is True and ids[1]["object_id"] == ids[0]["object_id"]
    assert ids[2]["duplicate"] is False and ids[2]["object_id"] != ids[0]["object_id"]
    assert await _count(client) == 2


async def test_multipart_parts_in_any_order_resent_then_assembled(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await _ready(client)
    mib = 1024 * 1024
    data = os.urandom(11 * mib)
    schema = {"properties": {"raw": {"type": "binary"}}}
    await make_bucket(client, "production", "files", schema)
    body = {"filename": "big.bin", "content_type": "application/octet-stream", "multipart": True}
    body |= {"file_size_bytes": len(data), "part_size_bytes": 5 * mib}
    up = (await client.post("/v1/buckets/files/uploads", headers=NS, json=body)).json()
    parts = {p["part_number"]: p["presigned_url"] for p in up["parts"]}
    assert sorted(parts) == [1, 2, 3]
    chunks = {n: data[(n - 1) * 5 * mib : n * 5 * mib] for n in parts}
    await client.put(parts[3], content=chunks[3])
    await client.put(parts[2], content=b"garbage")  # a failed attempt, then re-sent
    r = await client.post(f"/v1/buckets/files/uploads/{up['upload_id']}/confirm", headers=NS)
    assert r.status_code == 409 and "[1]" in r.json()["error"]["message"]
    await client.put(parts[2], content=chunks[2])
    await client.put(parts[1], content=chunks[1])
    r = await client.post(
        f"/v1/buckets/files/uploads/{up['upload_id']}/confirm",
        headers=NS,
        json={"file_hash": hashlib.sha256(data).hexdigest()},
    )
    assert r.status_code == 200, r.text
    obj = r.json()["object_id"]
    blob = (await client.get(f"/v1/buckets/files/objects/{obj}", headers=NS)).json()["blobs"][0]
    assert blob["size_bytes"] == len(data) and blob["sha256"] == hashlib.sha256(data).hexdigest()
    assert _leftovers(settings) == []


async def test_batch_creation_and_listing(client: httpx.AsyncClient) -> None:
    await _ready(client)
    good = {"filename": "a.png", "content_type": "image/png"}
    ambiguous = {"filename": "a.bin", "content_type": "application/zip"}
    r = await client.post(f"{UPLOADS}/batch", headers=NS, json={"uploads": [good, ambiguous, good]})
    assert r.status_code == 200 and r.json()["succeeded_count"] == 2
    assert r.json()["failed"][0]["index"] == 1
    assert r.json()["failed"][0]["error_type"] == "ValidationError"
    listed = (await client.get(UPLOADS, headers=NS, params={"limit": 1})).json()
    assert len(listed["results"]) == 1 and listed["pagination"]["next_cursor"]
    r = await client.post(f"{UPLOADS}/batch", headers=NS, json={"uploads": [good] * 101})
    assert r.status_code == 422


def test_a_put_cut_off_midway_leaves_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", admin_key=ADMIN_KEY, workers=0)
    with LiveServer(settings) as server:
        auth = {"Authorization": f"Bearer {ADMIN_KEY}", **NS}
        with httpx.Client(base_url=server.url, headers=auth) as c:
            c.post("/v1/namespaces", json={"namespace_name": "production"}).raise_for_status()
            schema = {"properties": {"raw": {"type": "binary"}}}
            c.post("/v1/buckets", json={"bucket_name": "files", "bucket_schema": schema})
            body = {"filename": "x.bin", "content_type": "application/octet-stream"}
            up = c.post("/v1/buckets/files/uploads", json=body).json()
            target = urlsplit(up["presigned_url"])
            with socket.create_connection((target.hostname, target.port)) as sock:
                head = (
                    f"PUT {target.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
                ).encode()
                sock.sendall(head + b"x" * 1000)  # then the client goes away
            r = c.post(f"/v1/buckets/files/uploads/{up['upload_id']}/confirm")
            assert r.status_code == 409
            assert c.get("/v1/buckets/files").json()["object_count"] == 0
    assert _leftovers(settings) == []


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, workers=0)


async def _body(size: int, chunk: int = 1 << 20) -> AsyncIterator[bytes]:
    for start in range(0, size, chunk):
        yield bytes([start // chunk % 251]) * min(chunk, size - start)


async def test_a_body_of_many_blocks_is_written_whole_and_in_order(tmp_path: Path) -> None:
    # Blocks are written in a thread while the next one is received: order and digest hold.
    size = 3 * BLOCK + 12345
    expected = hashlib.sha256(b"".join([c async for c in _body(size)])).hexdigest()
    got = await _stream_to_file(_body(size), tmp_path / "u", limit=size)
    assert got == (size, expected)
    assert hashlib.sha256((tmp_path / "u").read_bytes()).hexdigest() == expected


async def test_a_body_over_the_limit_midway_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLarge):
        await _stream_to_file(_body(3 * BLOCK), tmp_path / "u", limit=2 * BLOCK + 1)
    assert list(tmp_path.iterdir()) == []
