"""Shared content-addressed bytes: nothing stray after a refusal, nothing lost to a race."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assay.config import Settings
from assay.main import create_app
from assay.models import BlobBytes
from tests.conftest import ADMIN_KEY, b64, make_bucket, make_namespace, png_bytes

SCHEMA = {"properties": {"img": {"type": "image"}, "n": {"type": "integer"}}}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Every blob in the file store, whose files these tests inspect."""
    return Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, small_blob_max_bytes=0)


def stored_files(settings: Settings) -> list[Path]:
    return [p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()]


async def test_a_refused_object_leaves_no_bytes_behind(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await make_namespace(client)
    await make_bucket(client, "production", "b", SCHEMA)
    body = {
        "blobs": [
            {"property": "img", "type": "image", "content": b64(png_bytes())},
            {"property": "n", "type": "integer", "content": "x"},
        ]
    }
    r = await client.post("/v1/buckets/b/objects", json=body, headers={"X-Namespace": "production"})
    assert r.status_code == 422 and r.json()["error"]["details"]["validation_errors"][0]["loc"] == [
        "blobs",
        1,
    ]
    assert stored_files(settings) == []


async def test_batch_keeps_the_bytes_of_successes_only(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await make_namespace(client)
    await make_bucket(client, "production", "b", SCHEMA)
    good = {
        "blobs": [
            {"property": "img", "type": "image", "content": b64(png_bytes("GOOD"))},
            {"property": "n", "type": "integer", "content": 1},
        ]
    }
    bad = {
        "blobs": [
            {"property": "img", "type": "image", "content": b64(png_bytes("BAD"))},
            {"property": "n", "type": "integer", "content": "x"},
        ]
    }
    r = await client.post(
        "/v1/buckets/b/objects/batch",
        json={"objects": [good, bad]},
        headers={"X-Namespace": "production"},
    )
    assert (
        r.status_code == 200
        and r.json()["succeeded_count"] == 1
        and r.json()["failed"][0]["index"] == 1
    )
    files = stored_files(settings)
    assert [f.name for f in files] == [r.json()["succeeded"][0]["blobs"][0]["sha256"]]


async def test_deleting_while_the_same_content_is_registered_loses_nothing(
    client: httpx.AsyncClient,
) -> None:
    await make_namespace(client)
    await make_bucket(client, "production", "b", SCHEMA)
    headers = {"X-Namespace": "production"}
    body = {"blobs": [{"property": "img", "type": "image", "content": b64(png_bytes("SAME"))}]}
    for _ in range(5):
        first = (await client.post("/v1/buckets/b/objects", json=body, headers=headers)).json()
        delete = client.delete(f"/v1/buckets/b/objects/{first['object_id']}", headers=headers)
        create = client.post("/v1/buckets/b/objects", json=body, headers=headers)
        deleted, created = await asyncio.gather(delete, create)
        assert deleted.status_code == 204 and created.status_code == 200
        obj = created.json()
        url = f"/v1/buckets/b/objects/{obj['object_id']}/blobs/{obj['blobs'][0]['blob_id']}/content"
        content = await client.get(url, headers=headers)
        assert content.status_code == 200 and content.content == png_bytes("SAME")
        await client.delete(f"/v1/buckets/b/objects/{obj['object_id']}", headers=headers)


async def test_small_blobs_live_in_the_database_shared_and_deleted_with_their_last_object(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY)  # default: 64 KiB
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        auth = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": "production"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            c.headers.update({"Authorization": auth["Authorization"]})
            await make_namespace(c)
            await make_bucket(c, "production", "b", SCHEMA)
            body = {"blobs": [{"property": "img", "type": "image", "content": b64(png_bytes())}]}
            one = (await c.post("/v1/buckets/b/objects", json=body, headers=auth)).json()
            two = (await c.post("/v1/buckets/b/objects", json=body, headers=auth)).json()
            assert stored_files(settings) == []  # no file for a small blob
            db = app.state.ctx.db
            assert await db.read(_bytes_rows) == 1  # stored once for both objects

            await c.delete(f"/v1/buckets/b/objects/{one['object_id']}", headers=auth)
            url = f"/v1/buckets/b/objects/{two['object_id']}/blobs/{two['blobs'][0]['blob_id']}"
            r = await c.get(url + "/content", headers={**auth, "Range": "bytes=1-3"})
            assert r.status_code == 206 and r.content == png_bytes()[1:4]
            assert await db.read(_bytes_rows) == 1

            await c.delete(f"/v1/buckets/b/objects/{two['object_id']}", headers=auth)
            assert await db.read(_bytes_rows) == 0


def _bytes_rows(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(BlobBytes)) or 0)
