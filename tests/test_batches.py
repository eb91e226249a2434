"""Batches end to end over the ASGI app, with the in-server worker or workers run inline."""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from assay.batches.repository import Sized
from assay.batches.service import (
    CHUNK,
    JOB_BYTES,
    JOB_KIND,
    SMALL_CHUNK,
    SMALL_OBJECT_BYTES,
    job_chunks,
)
from assay.batches.tasks import BatchExtraction
from assay.engine.local import LocalWorkers
from assay.extractors.base import ExtractorError, ObjectInput
from assay.extractors.builtin.passthrough import PassthroughExtractor
from assay.extractors.registry import ExtractorRegistry
from assay.jobs import repository as jobs
from assay.models import Document, Event
from assay.workers import make_workers

SCHEMA = {"properties": {"body": {"type": "text", "required": True}, "doc": {"type": "json"}}}
NS = {"X-Namespace": "docs"}


async def _setup(client: httpx.AsyncClient, extractor: str = "passthrough_extractor") -> None:
    r = await client.post(
        "/v1/namespaces",
        json={
            "namespace_name": "docs",
            "feature_extractors": [{"feature_extractor_name": extractor, "version": "v1"}],
        },
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/buckets", headers=NS, json={"bucket_name": "b", "bucket_schema": SCHEMA}
    )
    assert r.status_code == 200, r.text


async def _objects(client: httpx.AsyncClient, n: int, **metadata: Any) -> list[str]:
    objects = [
        {
            "metadata": {"i": i, **metadata},
            "blobs": [
                {"property": "body", "type": "text", "content": f"text {i}"},
                {"property": "doc", "type": "json", "content": {"n": i}},
            ],
        }
        for i in range(n)
    ]
    r = await client.post("/v1/buckets/b/objects/batch", headers=NS, json={"objects": objects})
    assert r.status_code == 200 and r.json()["failed_count"] == 0, r.text
    return [o["object_id"] for o in r.json()["succeeded"]]


async def _wait(client: httpx.AsyncClient, batch_id: str, timeout_s: float = 20) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        batch = (await client.get(f"/v1/buckets/b/batches/{batch_id}", headers=NS)).json()
        if batch["status"] in ("COMPLETED", "FAILED", "CANCELED"):
            return batch
        assert asyncio.get_running_loop().time() < deadline, batch
        await asyncio.sleep(0.05)


async def test_batch_lifecycle_with_background_workers(client: httpx.AsyncClient) -> None:
    await _setup(client)
    ids = await _objects(client, 60)
    r = await client.post("/v1/buckets/b/batches", headers=NS, json={"object_ids": ids[:50]})
    assert r.status_code == 200 and r.json()["status"] == "DRAFT", r.text
    batch_id = r.json()["batch_id"]
    assert r.json()["progress"]["total"] == 50

    r = await client.post(
        f"/v1/buckets/b/batches/{batch_id}/objects", headers=NS, json={"object_ids": ids[50:]}
    )
    assert r.status_code == 200 and r.json()["progress"]["total"] == 60

    r = await client.post(f"/v1/buckets/b/batches/{batch_id}/submit", headers=NS)
    assert r.status_code == 200 and r.json()["status"] == "QUEUED", r.text
    task_id = r.json()["task_id"]
    again = await client.post(f"/v1/buckets/b/batches/{batch_id}/submit", headers=NS)
    assert again.status_code == 409 and again.json()["error"]["type"] == "ConflictError"
    late = await client.post(
        f"/v1/buckets/b/batches/{batch_id}/objects", headers=NS, json={"object_ids": ids[:1]}
    )
    assert late.status_code == 409

    workers = make_workers(client._transport.app.state.ctx, 2)  # type: ignore[attr-defined]
    workers.start()  # the same background loop `assay serve --workers 2` runs
    try:
        batch = await _wait(client, batch_id)
    finally:
        await workers.stop()
    assert batch["status"] == "COMPLETED", batch
    assert batch["progress"] == {
        "total": 60,
        "pending": 0,
        "processing": 0,
        "succeeded": 60,
        "failed": 0,
        "percent": 100.0,
    }
    assert batch["started_at"] and batch["completed_at"]
    task = (await client.get(f"/v1/tasks/{task_id}", headers=NS)).json()
    assert task["status"] == "COMPLETED" and task["progress"]["succeeded"] == 60

    db = client._transport.app.state.ctx.db  # type: ignore[attr-defined]
    docs = await db.read(
        lambda s: list(s.scalars(select(Document).where(Document.object_id == ids[0])))
    )
    assert sorted(d.property for d in docs) == ["body", "doc"]
    text = {d.property: d.content["text"] for d in docs}
    assert text == {"body": "text 0", "doc": '{"n": 0}'} and docs[0].metadata_["i"] == 0
    events = await db.read(
        lambda s: [e.event_type for e in s.scalars(select(Event).order_by(Event.occurred_at))]
    )
    assert events.count("object.created") == 60
    batch_events = [e for e in events if e.startswith("batch.")]
    assert batch_events == ["batch.queued", "batch.processing", "batch.completed"]
    assert "collection.documents.written" in events


async def test_unknown_objects_are_named_and_cancel_and_empty_batches(
    client: httpx.AsyncClient,
) -> None:
    await _setup(client)
    ids = await _objects(client, 2)
    r = await client.post(
        "/v1/buckets/b/batches", headers=NS, json={"object_ids": [ids[0], "obj_nope"]}
    )
    assert r.status_code == 422 and r.json()["error"]["details"]["unknown_object_ids"] == [
        "obj_nope"
    ]
    empty = (await client.post("/v1/buckets/b/batches", headers=NS, json={})).json()
    r = await client.post(f"/v1/buckets/b/batches/{empty['batch_id']}/submit", headers=NS)
    assert r.status_code == 422
    r = await client.post(f"/v1/buckets/b/batches/{empty['batch_id']}/cancel", headers=NS)
    assert r.status_code == 409  # DRAFT cannot be canceled: no such transition
    assert (await client.get("/v1/buckets/b/batches/btch_missing", headers=NS)).status_code == 404


class _PickyPassthrough(PassthroughExtractor):
    """Fails objects whose metadata says so, like bad media would."""

    def extract(self, obj: ObjectInput, params: dict[str, Any]):  # type: ignore[no-untyped-def]
        if obj.metadata.get("bad"):
            raise ExtractorError("CorruptMedia", f"object {obj.object_id} is unreadable")
        return super().extract(obj, params)


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    return settings.model_copy(update={"workers": 0})  # these tests run the workers inline


async def test_small_texts_share_larger_jobs_than_small_images(
    client: httpx.AsyncClient,
) -> None:
    await _setup(client)
    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    workers = LocalWorkers(ctx.db, {JOB_KIND: BatchExtraction(ctx.db, ctx.keeper, ctx.registry)})
    texts = [o for _ in range(3) for o in await _objects(client, 100)]  # 100 a request
    text_batch = (
        await client.post("/v1/buckets/b/batches", headers=NS, json={"object_ids": texts})
    ).json()["batch_id"]
    await client.post(f"/v1/buckets/b/batches/{text_batch}/submit", headers=NS)
    assert await workers.run_until_idle() == 2  # SMALL_CHUNK, then the rest

    schema = {"properties": {"pic": {"type": "image", "required": True}}}
    r = await client.post(
        "/v1/buckets", headers=NS, json={"bucket_name": "m", "bucket_schema": schema}
    )
    assert r.status_code == 200, r.text
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")  # small in bytes, not in work
    picture = {
        "property": "pic",
        "type": "image",
        "content": base64.b64encode(buffer.getvalue()).decode(),
    }
    body = {"objects": [{"blobs": [picture]} for _ in range(CHUNK + 10)]}
    r = await client.post("/v1/buckets/m/objects/batch", headers=NS, json=body)
    assert r.status_code == 200 and r.json()["failed_count"] == 0, r.text
    images = [o["object_id"] for o in r.json()["succeeded"]]
    image_batch = (
        await client.post("/v1/buckets/m/batches", headers=NS, json={"object_ids": images})
    ).json()["batch_id"]
    await client.post(f"/v1/buckets/m/batches/{image_batch}/submit", headers=NS)
    assert await workers.run_until_idle() == 2  # CHUNK, then 10
    for path, done in (("b/batches/" + text_batch, texts), ("m/batches/" + image_batch, images)):
        finished = (await client.get(f"/v1/buckets/{path}", headers=NS)).json()
        assert finished["status"] == "COMPLETED", finished
        assert finished["progress"]["succeeded"] == len(done)


async def test_partial_failures_complete_with_failures_listed_and_retry(
    client: httpx.AsyncClient,
) -> None:
    await _setup(client)
    good = await _objects(client, 5)
    bad = await _objects(client, 2, bad=True)
    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    body = BatchExtraction(
        ctx.db, ctx.keeper, ExtractorRegistry(implementations=[_PickyPassthrough()])
    )
    workers = LocalWorkers(ctx.db, {JOB_KIND: body})

    batch_id = (
        await client.post("/v1/buckets/b/batches", headers=NS, json={"object_ids": good + bad})
    ).json()["batch_id"]
    await client.post(f"/v1/buckets/b/batches/{batch_id}/submit", headers=NS)
    assert await workers.run_until_idle() == 1
    batch = (await client.get(f"/v1/buckets/b/batches/{batch_id}", headers=NS)).json()
    assert batch["status"] == "COMPLETED" and batch["progress"]["failed"] == 2
    assert batch["error_summary"] == {"CorruptMedia": 2}
    failures = (await client.get(f"/v1/buckets/b/batches/{batch_id}/failures", headers=NS)).json()
    assert {f["object_id"] for f in failures["results"]} == set(bad)
    assert all(
        f["error_type"] == "CorruptMedia" and f["attempts"] == 1 for f in failures["results"]
    )

    r = await client.post(f"/v1/buckets/b/batches/{batch_id}/retry", headers=NS)
    assert r.status_code == 200 and r.json()["status"] == "QUEUED"
    processing = (await client.get(f"/v1/buckets/b/batches/{batch_id}", headers=NS)).json()
    assert processing["progress"]["pending"] == 2 and processing["progress"]["succeeded"] == 5
    assert await workers.run_until_idle() == 1  # only the failed objects' chunk
    batch = (await client.get(f"/v1/buckets/b/batches/{batch_id}", headers=NS)).json()
    assert batch["status"] == "COMPLETED" and batch["progress"]["failed"] == 2


async def test_running_a_chunk_twice_never_duplicates_documents(client: httpx.AsyncClient) -> None:
    await _setup(client)
    ids = await _objects(client, 3)
    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    batch_id = (
        await client.post("/v1/buckets/b/batches", headers=NS, json={"object_ids": ids})
    ).json()["batch_id"]
    await client.post(f"/v1/buckets/b/batches/{batch_id}/submit", headers=NS)
    workers = LocalWorkers(ctx.db, {JOB_KIND: BatchExtraction(ctx.db, ctx.keeper, ctx.registry)})
    # A worker claims the job and "dies" before finishing: its lease runs out, another runs it.
    (job,) = await ctx.db.write(lambda s: jobs.claim(s, "dead-worker", lease_s=0.0))
    await BatchExtraction(ctx.db, ctx.keeper, ctx.registry).run(job)  # the dead worker's work
    await asyncio.sleep(0.01)
    count = await ctx.db.read(lambda s: s.scalar(select(func.count()).select_from(Document)))
    assert count == 6
    assert await workers.run_until_idle() == 1  # the lease ran out: run again
    count = await ctx.db.read(lambda s: s.scalar(select(func.count()).select_from(Document)))
    assert count == 6


async def test_an_unavailable_extractor_fails_the_batch_clearly(client: httpx.AsyncClient) -> None:
    await _setup(client, "multimodal_extractor")
    ids = await _objects(client, 2)
    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    batch_id = (
        await client.post("/v1/buckets/b/batches", headers=NS, json={"object_ids": ids})
    ).json()["batch_id"]
    await client.post(f"/v1/buckets/b/batches/{batch_id}/submit", headers=NS)
    # A build whose registry declares the extractor but carries no code for it.
    without = ExtractorRegistry(implementations=[PassthroughExtractor()])
    await LocalWorkers(
        ctx.db, {JOB_KIND: BatchExtraction(ctx.db, ctx.keeper, without)}
    ).run_until_idle()
    batch = (await client.get(f"/v1/buckets/b/batches/{batch_id}", headers=NS)).json()
    assert batch["status"] == "FAILED" and batch["error_summary"] == {"ExtractorUnavailable": 2}


async def test_cancel_stops_queued_work_and_the_task_says_so(client: httpx.AsyncClient) -> None:
    await _setup(client)
    ids = await _objects(client, 100) + await _objects(client, 20)
    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    r = await client.post("/v1/buckets/b/batches", headers=NS, json={"object_ids": ids})
    batch_id = r.json()["batch_id"]
    task_id = (await client.post(f"/v1/buckets/b/batches/{batch_id}/submit", headers=NS)).json()[
        "task_id"
    ]
    r = await client.post(f"/v1/buckets/b/batches/{batch_id}/cancel", headers=NS)
    assert r.status_code == 200 and r.json()["status"] == "CANCELED"
    body = BatchExtraction(ctx.db, ctx.keeper, ctx.registry)
    assert await LocalWorkers(ctx.db, {JOB_KIND: body}).run_until_idle() == 0
    count = await ctx.db.read(lambda s: s.scalar(select(func.count()).select_from(Document)))
    assert count == 0
    task = (await client.get(f"/v1/tasks/{task_id}", headers=NS)).json()
    assert task["status"] == "CANCELED" and task["progress"]["pending"] == 120
    again = await client.post(f"/v1/buckets/b/batches/{batch_id}/cancel", headers=NS)
    assert again.status_code == 409
    other = await client.get(f"/v1/tasks/{task_id}", headers={"X-Namespace": "production"})
    assert other.status_code == 404  # no such namespace for this caller: nothing leaks


def test_jobs_group_objects_of_like_size_within_count_and_byte_bounds() -> None:
    mib = 1024 * 1024
    texts = [Sized(f"t{i:03}", 100 + (i * 37) % 900, True) for i in range(300)]
    thumbnails = [Sized(f"i{i:03}", 2_000 + i, False) for i in range(60)]  # small, not text
    pages = [Sized(f"p{i:03}", SMALL_OBJECT_BYTES + 1 + i, True) for i in range(120)]
    videos = [Sized("v1", 300 * mib), Sized("v2", 90 * mib), Sized("v3", 90 * mib)]
    everything = [*videos, Sized("v4", 90 * mib), *pages, *thumbnails, *texts]
    chunks = job_chunks(everything)
    assert sorted(o for c in chunks for o in c) == sorted(o.object_id for o in everything)
    size = {o.object_id: o.size for o in everything}
    # Texts of a page at most go SMALL_CHUNK to a job; a job with anything else, CHUNK.
    assert [len(c) for c in chunks[:3]] == [SMALL_CHUNK, CHUNK, CHUNK]
    assert all(len(c) <= CHUNK for c in chunks[1:])
    # Smallest first: every job's objects are no larger than the next job's.
    for a, b in itertools.pairwise(chunks):
        assert max(size[o] for o in a) <= min(size[o] for o in b)
    # Big media: two 90-MiB videos fit a job, a third would pass JOB_BYTES; 300 MiB goes alone.
    assert chunks[-3][-2:] == ["v2", "v3"] and chunks[-2:] == [["v4"], ["v1"]]
    assert all(sum(size[o] for o in c) <= JOB_BYTES for c in chunks if len(c) > 1)
    # Equal sizes keep their order.
    assert job_chunks([Sized("b", 5), Sized("a", 5), Sized("c", 1)]) == [["c", "b", "a"]]
