"""Sync configurations end to end: moto's S3 server as the source, the app over ASGI, and the
`sync.run` job run inline by `LocalWorkers`."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from assay.config import Settings
from assay.context import AppContext
from assay.engine.local import LocalWorkers
from assay.jobs import repository as jobs
from assay.main import create_app
from assay.models import Job
from assay.syncs.source import choose_property, pattern_fits, wanted
from assay.syncs.tasks import SyncRun, enqueue_due_syncs
from tests.conftest import ADMIN_KEY, png_bytes

pytestmark = pytest.mark.s3

NS = {"X-Namespace": "media"}
SCHEMA = {
    "properties": {"body": {"type": "text"}, "picture": {"type": "image"}, "doc": {"type": "json"}}
}
ACCESS_KEY = "AKIASYNCTESTKEY00001"
SECRET_KEY = "sync-secret-" + "s3cr3t" * 6
TEXTS, IMAGES, RECORDS = 200, 40, 30
GOOD = TEXTS + IMAGES + RECORDS + 1  # + one extension-less image typed by S3's Content-Type


class S3:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def bucket(self, objects: dict[str, bytes | tuple[bytes, str]]) -> str:
        """A fresh source bucket holding `objects` (bytes, or bytes with a Content-Type)."""
        name = f"src-{secrets.token_hex(4)}"
        self.client.create_bucket(Bucket=name)
        for key, value in objects.items():
            self.put(name, key, value)
        return name

    def put(self, bucket: str, key: str, value: bytes | tuple[bytes, str]) -> None:
        data, ctype = value if isinstance(value, tuple) else (value, None)
        extra = {"ContentType": ctype} if ctype else {}
        self.client.put_object(Bucket=bucket, Key=key, Body=data, **extra)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per S3 request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def big_source(s3: S3) -> str:
    """A few hundred keys under `set/`: text, PNG, JSON, junk to exclude, one broken PNG."""
    image = png_bytes("SYNC")
    objects: dict[str, bytes | tuple[bytes, str]] = {}
    objects |= {f"set/docs/doc-{i:03}.txt": f"document {i}".encode() for i in range(TEXTS)}
    objects |= {f"set/images/img-{i:02}.png": (image, "image/png") for i in range(IMAGES)}
    objects |= {f"set/data/rec-{i:02}.json": json.dumps({"i": i}).encode() for i in range(RECORDS)}
    objects |= {f"set/tmp/junk-{i}.txt": b"junk" for i in range(10)}
    objects["set/images/noext"] = (image, "image/png")
    objects["set/images/broken.png"] = b"these bytes are not an image"
    objects["other/outside.txt"] = b"outside the prefix"
    return s3.bucket(objects)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        data_dir=tmp_path / "data", admin_key=ADMIN_KEY, workers=0, allow_private_urls=True
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://assay.test", headers=headers
        ) as c:
            await _setup(c, "media")
            yield c


async def _setup(c: httpx.AsyncClient, namespace: str) -> None:
    r = await c.post("/v1/namespaces", json={"namespace_name": namespace})
    assert r.status_code == 200, r.text
    body = {"bucket_name": "assets", "bucket_schema": SCHEMA}
    r = await c.post("/v1/buckets", headers={"X-Namespace": namespace}, json=body)
    assert r.status_code == 200, r.text


def _ctx(c: httpx.AsyncClient) -> AppContext:
    return c._transport.app.state.ctx  # type: ignore[attr-defined,no-any-return]


def _source(s3: S3, bucket: str, prefix: str = "", creds: bool = True) -> dict[str, Any]:
    source: dict[str, Any] = {"provider": "s3", "bucket": bucket, "prefix": prefix}
    source["endpoint_url"] = s3.endpoint
    if creds:
        source["credentials"] = {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}
    return source


async def _create(c: httpx.AsyncClient, source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    r = await c.post("/v1/buckets/assets/syncs", headers=NS, json={"source": source, **extra})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _run(c: httpx.AsyncClient) -> int:
    ctx = _ctx(c)
    return await LocalWorkers(ctx.db, {"sync.run": SyncRun.from_context(ctx)}).run_until_idle()


async def _sync(c: httpx.AsyncClient, sync_id: str) -> dict[str, Any]:
    r = await c.get(f"/v1/buckets/assets/syncs/{sync_id}", headers=NS)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _objects(c: httpx.AsyncClient) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        r = await c.get("/v1/buckets/assets/objects", headers=NS, params=params)
        assert r.status_code == 200, r.text
        out += r.json()["results"]
        cursor = r.json()["pagination"]["next_cursor"]
        if not cursor:
            return out


async def test_sync_registers_each_matching_key_once(
    client: httpx.AsyncClient, s3: S3, big_source: str
) -> None:
    mapping = {"image/*": "picture", "text/plain": "body"}  # JSON falls back to `doc`
    filters = {"exclude": ["tmp/*"]}
    sync = await _create(
        client, _source(s3, big_source, "set/"), property_mapping=mapping, file_filters=filters
    )
    assert sync["sync_id"].startswith("sync_") and sync["status"] == "ACTIVE"
    assert sync["source"]["credentials_set"] is True and "credentials" not in sync["source"]
    assert await _run(client) == 1

    done = await _sync(client, sync["sync_id"])
    assert done["objects_created"] == GOOD and done["errors"] == 1, done
    assert done["last_errors"][0]["key"] == "set/images/broken.png"
    assert "image" in done["last_errors"][0]["message"]
    assert done["last_run_at"] and done["last_run"]["objects_created"] == GOOD
    assert done["next_run_at"] is None  # one-time: nothing scheduled

    objects = await _objects(client)
    keys = Counter(o["metadata"]["source_key"] for o in objects)
    assert len(objects) == GOOD and max(keys.values()) == 1
    assert not any(k.startswith(("set/tmp/", "other/")) for k in keys)
    prop_of = {o["metadata"]["source_key"]: o["blobs"][0]["property"] for o in objects}
    assert prop_of["set/docs/doc-000.txt"] == "body"
    assert prop_of["set/images/img-00.png"] == "picture"
    assert prop_of["set/images/noext"] == "picture"  # typed by S3's Content-Type, not its name
    assert prop_of["set/data/rec-00.json"] == "doc"
    doc = next(o for o in objects if o["metadata"]["source_key"] == "set/data/rec-07.json")
    r = await client.get(
        f"/v1/buckets/assets/objects/{doc['object_id']}/blobs/{doc['blobs'][0]['blob_id']}/content",
        headers=NS,
    )
    assert r.content == b'{"i": 7}'  # the source's exact bytes

    r = await client.post(f"/v1/buckets/assets/syncs/{sync['sync_id']}/trigger", headers=NS)
    assert r.status_code == 200 and r.json()["job_id"].startswith("job_"), r.text
    assert await _run(client) == 1
    again = await _sync(client, sync["sync_id"])
    assert again["objects_created"] == GOOD and again["errors"] == 1
    assert again["last_run"]["objects_created"] == 0
    assert again["last_run"]["objects_skipped"] == GOOD + 1  # the broken key is not re-read
    assert again["objects_skipped"] == done["objects_skipped"] + GOOD + 1
    assert len(await _objects(client)) == GOOD


async def test_include_globs(client: httpx.AsyncClient, s3: S3, big_source: str) -> None:
    filters = {"include": ["images/*"], "exclude": ["*broken*"]}
    sync = await _create(client, _source(s3, big_source, "set/"), file_filters=filters)
    await _run(client)
    done = await _sync(client, sync["sync_id"])
    assert (done["objects_created"], done["errors"]) == (IMAGES + 1, 0), done["last_errors"]
    objects = await _objects(client)
    assert {o["blobs"][0]["property"] for o in objects} == {"picture"}


async def test_no_credentials_means_unsigned_requests(client: httpx.AsyncClient, s3: S3) -> None:
    bucket = s3.bucket({})
    s3.client.put_object(Bucket=bucket, Key="public.txt", Body=b"hello", ACL="public-read")
    s3.client.put_object(Bucket=bucket, Key="private.txt", Body=b"secret")
    sync = await _create(client, _source(s3, bucket, creds=False))
    assert sync["source"]["credentials_set"] is False
    await _run(client)
    done = await _sync(client, sync["sync_id"])
    assert done["objects_created"] == 1 and done["errors"] == 1, done["last_errors"]
    assert done["last_errors"][0]["key"] == "private.txt"
    assert "403" in done["last_errors"][0]["message"]


async def test_changed_key_registers_exactly_one_new_object(
    client: httpx.AsyncClient, s3: S3
) -> None:
    bucket = s3.bucket({f"n/{i}.txt": f"note {i}".encode() for i in range(5)})
    sync = await _create(client, _source(s3, bucket))
    await _run(client)
    assert (await _sync(client, sync["sync_id"]))["objects_created"] == 5

    s3.put(bucket, "n/3.txt", b"note 3, edited")  # a new ETag
    await client.post(f"/v1/buckets/assets/syncs/{sync['sync_id']}/trigger", headers=NS)
    await _run(client)
    done = await _sync(client, sync["sync_id"])
    assert done["objects_created"] == 6 and done["last_run"]["objects_created"] == 1
    assert done["last_run"]["objects_skipped"] == 4
    objects = await _objects(client)
    versions = [o for o in objects if o["metadata"]["source_key"] == "n/3.txt"]
    assert len(objects) == 6 and len(versions) == 2  # the old object is kept
    assert len({v["metadata"]["source_etag"] for v in versions}) == 2


async def test_oversized_and_untyped_keys_fail_once(client: httpx.AsyncClient, s3: S3) -> None:
    bucket = s3.bucket({"big.txt": b"x" * 2000, "ok.txt": b"fine", "blob.bin": b"\x00\x01"})
    sync = await _create(client, _source(s3, bucket))
    ctx = _ctx(client)
    body = SyncRun.from_context(ctx)
    body.max_bytes = 1000
    for _ in range(2):
        await LocalWorkers(ctx.db, {"sync.run": body}).run_until_idle()
        await client.post(f"/v1/buckets/assets/syncs/{sync['sync_id']}/trigger", headers=NS)
    done = await _sync(client, sync["sync_id"])
    assert (done["objects_created"], done["errors"]) == (1, 2), done["last_errors"]
    messages = {e["key"]: e["message"] for e in done["last_errors"]}
    assert "limit of 1000 bytes" in messages["big.txt"]
    assert "application/octet-stream" in messages["blob.bin"]
    assert done["last_run"]["objects_skipped"] == 3  # failed keys wait for a new ETag


def test_property_choice_rules() -> None:
    files = {"a": "image", "b": "image", "raw": "binary", "notes": "text"}
    mapping = {"image/*": "a", "image/png": "b"}
    assert choose_property("image/png", mapping, files) == ("b", "image")  # most specific
    assert choose_property("image/gif", mapping, files) == ("a", "image")
    assert choose_property("text/csv", {}, files) == ("notes", "text")  # typed beats binary
    assert choose_property("application/zip", {}, files) == ("raw", "binary")
    assert "several" in str(choose_property("image/png", {}, files))
    assert pattern_fits("image/*", "image") and pattern_fits("*/*", "binary")
    assert not pattern_fits("*/*", "image") and not pattern_fits("image/*", "text")
    assert wanted("a/b.png", {"include": ["*.png"], "exclude": ["a/tmp*"]})
    assert not wanted("a/tmp1.png", {"include": ["*.png"], "exclude": ["a/tmp*"]})


async def test_overlapping_runs_never_register_a_key_twice(
    client: httpx.AsyncClient, s3: S3, big_source: str
) -> None:
    sync = await _create(
        client, _source(s3, big_source, "set/"), file_filters={"exclude": ["tmp/*"]}
    )
    ctx = _ctx(client)
    payload = {"sync_id": sync["sync_id"], "bucket_id": sync["bucket_id"]}
    ns_id = sync["namespace_id"]
    await ctx.db.write(lambda s: jobs.enqueue(s, ns_id, "sync.run", payload))  # a second run

    spans: list[tuple[float, float]] = []

    class Timed(SyncRun):
        async def run(self, job: Job) -> None:
            start = time.monotonic()
            await super().run(job)
            spans.append((start, time.monotonic()))

    def workers() -> LocalWorkers:
        return LocalWorkers(ctx.db, {"sync.run": Timed.from_context(ctx)})

    ran = await asyncio.gather(workers().run_until_idle("w1"), workers().run_until_idle("w2"))
    assert sorted(ran) == [1, 1]
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, "the two runs did not overlap"

    objects = await _objects(client)
    keys = Counter(o["metadata"]["source_key"] for o in objects)
    assert len(objects) == GOOD and set(keys.values()) == {1}
    done = await _sync(client, sync["sync_id"])
    assert done["objects_created"] == GOOD and done["errors"] == 1, done


async def test_auto_submit_makes_batches_of_batch_size(client: httpx.AsyncClient, s3: S3) -> None:
    bucket = s3.bucket({f"t/{i:02}.txt": f"text {i}".encode() for i in range(25)})
    sync = await _create(client, _source(s3, bucket), auto_submit=True, batch_size=10)
    await _run(client)
    assert (await _sync(client, sync["sync_id"]))["last_run"]["batches_submitted"] == 3
    r = await client.get("/v1/buckets/assets/batches", headers=NS)
    batches = r.json()["results"]
    assert len(batches) == 3 and {b["status"] for b in batches} == {"QUEUED"}, batches
    sizes = []
    for b in batches:
        full = (await client.get(f"/v1/buckets/assets/batches/{b['batch_id']}", headers=NS)).json()
        sizes.append(full["progress"]["total"])
    assert sorted(sizes) == [5, 10, 10]

    await client.post(f"/v1/buckets/assets/syncs/{sync['sync_id']}/trigger", headers=NS)
    await _run(client)
    r = await client.get("/v1/buckets/assets/batches", headers=NS)
    assert len(r.json()["results"]) == 3  # nothing new, nothing batched twice


async def test_pause_resume_trigger_delete_and_polling(client: httpx.AsyncClient, s3: S3) -> None:
    bucket = s3.bucket({f"p/{i}.txt": b"poll me %d" % i for i in range(3)})
    sync = await _create(
        client, _source(s3, bucket), sync_mode="continuous", polling_interval_seconds=10
    )
    base = f"/v1/buckets/assets/syncs/{sync['sync_id']}"
    db = _ctx(client).db
    assert sync["next_run_at"] is not None

    r = await client.post(f"{base}/pause", headers=NS)
    assert r.status_code == 200 and r.json()["status"] == "PAUSED"
    assert await _run(client) == 0  # the queued first run was dropped
    assert (await client.post(f"{base}/trigger", headers=NS)).status_code == 409
    assert await enqueue_due_syncs(db) == 0

    r = await client.post(f"{base}/resume", headers=NS)
    assert r.status_code == 200 and r.json()["status"] == "ACTIVE"
    assert await enqueue_due_syncs(db) == 1
    assert await enqueue_due_syncs(db) == 0  # one queued run is enough
    assert await _run(client) == 1
    done = await _sync(client, sync["sync_id"])
    assert done["objects_created"] == 3 and done["next_run_at"] > done["last_run_at"]
    assert await enqueue_due_syncs(db) == 0  # not due for another 10 s

    first = await client.post(f"{base}/trigger", headers=NS)
    second = await client.post(f"{base}/trigger", headers=NS)
    assert first.status_code == 200 and first.json()["job_id"] == second.json()["job_id"]
    listed = await client.get("/v1/buckets/assets/syncs", headers=NS)
    assert listed.json()["total"] == 1 and listed.json()["results"][0]["sync_id"] == sync["sync_id"]
    r = await client.post("/v1/buckets/assets/syncs/list", headers=NS, json={})
    assert r.status_code == 200 and r.json()["total"] == 1

    r = await client.delete(base, headers=NS)
    assert r.status_code == 200 and r.json() == {"sync_id": sync["sync_id"], "deleted": True}
    assert (await client.get(base, headers=NS)).status_code == 404
    assert await _run(client) == 0  # its queued run went with it
    assert len(await _objects(client)) == 3  # objects stay


async def test_validation_and_permissions(client: httpx.AsyncClient, s3: S3) -> None:
    source = _source(s3, "anything")

    async def post(body: dict[str, Any], headers: dict[str, str] = NS) -> httpx.Response:
        return await client.post("/v1/buckets/assets/syncs", headers=headers, json=body)

    bad_bodies = [
        {"source": source, "property_mapping": {"image/*": "nope"}},
        {"source": source, "property_mapping": {"image/*": "body"}},  # text can't take images
        {"source": source, "property_mapping": {"*/*": "picture"}},
        {"source": source, "property_mapping": {"not a type": "body"}},
        {"source": {**source, "endpoint_url": "ftp://127.0.0.1/"}},
        {"source": source, "polling_interval_seconds": 5},
        {"source": source, "batch_size": 1001},
        {"source": source, "sync_mode": "sometimes"},
        {"source": source, "surprise": True},
    ]
    for body in bad_bodies:
        r = await post(body)
        assert r.status_code == 422 and r.json()["error"]["type"] == "ValidationError", body
    r = await post({"source": source, "sync_mode": "initial_only"})  # the hosted name
    assert r.status_code == 200 and r.json()["sync_mode"] == "one_time"

    ctx = _ctx(client)
    ctx.settings.allow_private_urls = False  # the SSRF guard refuses a loopback endpoint
    try:
        r = await post({"source": source})
        assert r.status_code == 422 and r.json()["error"]["details"]["validation_errors"][0][
            "loc"
        ] == ["source", "endpoint_url"]
    finally:
        ctx.settings.allow_private_urls = True

    r = await client.post("/v1/keys", json={"name": "reader", "role": "read"})
    assert r.status_code == 201, r.text
    reader = {**NS, "Authorization": f"Bearer {r.json()['key']}"}
    assert (await post({"source": source}, reader)).status_code == 403
    listed = await client.get("/v1/buckets/assets/syncs", headers=reader)
    assert listed.status_code == 200 and listed.json()["total"] == 1


async def test_credentials_never_leave_and_source_errors_are_recorded(
    client: httpx.AsyncClient, s3: S3
) -> None:
    sync = await _create(client, _source(s3, "no-such-source-bucket"), sync_mode="continuous")
    base = f"/v1/buckets/assets/syncs/{sync['sync_id']}"
    await _run(client)
    answers = [
        json.dumps(sync),
        (await client.get(base, headers=NS)).text,
        (await client.get("/v1/buckets/assets/syncs", headers=NS)).text,
        (await client.post("/v1/buckets/assets/syncs/list", headers=NS, json={})).text,
        (await client.post(f"{base}/pause", headers=NS)).text,
        (await client.post(f"{base}/resume", headers=NS)).text,
        (await client.get("/openapi.json")).text,
    ]
    for text in answers:
        assert SECRET_KEY not in text and ACCESS_KEY not in text
    done = await _sync(client, sync["sync_id"])
    assert done["errors"] == 1 and done["last_errors"][0]["key"] is None
    assert "NoSuchBucket" in done["last_errors"][0]["message"]
    assert done["next_run_at"] > done["last_run_at"]  # retried at the next poll, not at once


async def test_other_namespaces_see_nothing(client: httpx.AsyncClient, s3: S3) -> None:
    sync = await _create(client, _source(s3, "whatever"))
    await _setup(client, "elsewhere")  # same bucket name, other namespace
    other = {"X-Namespace": "elsewhere"}
    base = f"/v1/buckets/assets/syncs/{sync['sync_id']}"
    assert (await client.get(base, headers=other)).status_code == 404
    for action in ("trigger", "pause", "resume"):
        assert (await client.post(f"{base}/{action}", headers=other)).status_code == 404
    assert (await client.delete(base, headers=other)).status_code == 404
    listed = await client.get("/v1/buckets/assets/syncs", headers=other)
    assert listed.json()["total"] == 0
    assert (await client.get(base, headers=NS)).status_code == 200
