"""The app on the S3 blob store (moto): objects, s3:// URLs, direct uploads through real
presigned S3 URLs, multipart uploads."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from assay.config import Settings
from assay.main import create_app
from tests.conftest import (
    ADMIN_KEY,
    S3_BUCKET,
    b64,
    make_bucket,
    make_namespace,
    png_bytes,
    raw_s3_client,
)

pytestmark = pytest.mark.s3
NS = {"X-Namespace": "production"}
SCHEMA = {"properties": {"img": {"type": "image"}, "raw": {"type": "binary"}}}


@pytest.fixture
async def s3_client(
    tmp_path: Path, s3_endpoint: str
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    prefix = f"app-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=tmp_path / "data",
        admin_key=ADMIN_KEY,
        workers=0,
        blob_store=f"s3://{S3_BUCKET}/{prefix}",
        s3_endpoint_url=s3_endpoint,
        s3_region="us-east-1",
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        small_blob_max_bytes=0,  # every blob to S3
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as c:
            await make_namespace(c)
            await make_bucket(c, "production", "media", SCHEMA)
            yield c, prefix


def _keys(endpoint: str, prefix: str) -> list[str]:
    listed = raw_s3_client(endpoint).list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


async def test_objects_live_in_s3_and_leave_with_their_last_reference(
    s3_client: tuple[httpx.AsyncClient, str], s3_endpoint: str
) -> None:
    c, prefix = s3_client
    data = png_bytes("S3")
    body = {"blobs": [{"property": "img", "type": "image", "content": b64(data)}]}
    obj = (await c.post("/v1/buckets/media/objects", headers=NS, json=body)).json()
    sha = hashlib.sha256(data).hexdigest()
    assert [k for k in _keys(s3_endpoint, prefix) if k.endswith(sha)]
    blob = obj["blobs"][0]
    url = f"/v1/buckets/media/objects/{obj['object_id']}/blobs/{blob['blob_id']}/content"
    assert (await c.get(url, headers=NS)).content == data
    r = await c.get(url, headers={**NS, "Range": "bytes=2-5"})
    assert r.status_code == 206 and r.content == data[2:6]
    await c.delete(f"/v1/buckets/media/objects/{obj['object_id']}", headers=NS)
    assert not [k for k in _keys(s3_endpoint, prefix) if k.endswith(sha)]


async def test_s3_urls_are_read_with_the_store_credentials(
    s3_client: tuple[httpx.AsyncClient, str], s3_endpoint: str
) -> None:
    c, _ = s3_client
    raw = raw_s3_client(s3_endpoint)
    raw.put_object(Bucket=S3_BUCKET, Key="incoming/pic.png", Body=png_bytes("SRC"))
    body = {
        "blobs": [{"property": "img", "type": "image", "url": f"s3://{S3_BUCKET}/incoming/pic.png"}]
    }
    r = await c.post("/v1/buckets/media/objects", headers=NS, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["blobs"][0]["sha256"] == hashlib.sha256(png_bytes("SRC")).hexdigest()
    missing = {"blobs": [{"property": "img", "type": "image", "url": f"s3://{S3_BUCKET}/nope.png"}]}
    r = await c.post("/v1/buckets/media/objects", headers=NS, json=missing)
    assert r.status_code == 422 and "does not exist" in r.json()["error"]["message"]


async def test_direct_upload_through_a_real_presigned_s3_url(
    s3_client: tuple[httpx.AsyncClient, str], s3_endpoint: str
) -> None:
    c, prefix = s3_client
    data = png_bytes("UP")
    up = (
        await c.post(
            "/v1/buckets/media/uploads",
            headers=NS,
            json={"filename": "p.png", "content_type": "image/png", "file_size_bytes": len(data)},
        )
    ).json()
    assert up["presigned_url"].startswith(s3_endpoint)  # S3 itself, not Assay
    async with httpx.AsyncClient() as direct:
        assert (await direct.put(up["presigned_url"], content=data)).status_code == 200
    r = await c.post(f"/v1/buckets/media/uploads/{up['upload_id']}/confirm", headers=NS)
    assert r.status_code == 200 and r.json()["status"] == "COMPLETED", r.text
    assert not [k for k in _keys(s3_endpoint, prefix) if "/uploads/" in k]  # staging cleaned
    obj = (await c.get(f"/v1/buckets/media/objects/{r.json()['object_id']}", headers=NS)).json()
    assert obj["blobs"][0]["sha256"] == hashlib.sha256(data).hexdigest()


async def test_multipart_upload_through_s3_parts(s3_client: tuple[httpx.AsyncClient, str]) -> None:
    c, _ = s3_client
    mib = 1024 * 1024
    data = os.urandom(6 * mib)
    body = {
        "filename": "big.bin",
        "content_type": "application/octet-stream",
        "multipart": True,
        "file_size_bytes": len(data),
        "part_size_bytes": 5 * mib,
    }
    up = (await c.post("/v1/buckets/media/uploads", headers=NS, json=body)).json()
    urls = {p["part_number"]: p["presigned_url"] for p in up["parts"]}
    async with httpx.AsyncClient() as direct:
        await direct.put(urls[2], content=data[5 * mib :])
        r = await c.post(f"/v1/buckets/media/uploads/{up['upload_id']}/confirm", headers=NS)
        assert r.status_code == 409 and "[1]" in r.json()["error"]["message"]
        await direct.put(urls[1], content=data[: 5 * mib])
    r = await c.post(
        f"/v1/buckets/media/uploads/{up['upload_id']}/confirm",
        headers=NS,
        json={"file_hash": hashlib.sha256(data).hexdigest()},
    )
    assert r.status_code == 200, r.text
    obj = (await c.get(f"/v1/buckets/media/objects/{r.json()['object_id']}", headers=NS)).json()
    assert obj["blobs"][0]["size_bytes"] == len(data)
