"""Garbage collection and retention: each kind of leftover is removed, and nothing in use ever
is, a registration racing a sweep in another "process" (its own `Database`) included."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import numpy as np
import pytest
from sqlalchemy import func, insert, select, update

from assay.backends.blob.factory import make_blob_store
from assay.batches.service import JOB_KIND
from assay.batches.tasks import BatchExtraction
from assay.config import Settings
from assay.context import AppContext
from assay.documents.drafts import DerivedBlob, DocumentDraft
from assay.engine.local import LocalWorkers
from assay.events.outbox import emit
from assay.extractors.base import Extractor, ObjectInput
from assay.extractors.builtin.catalogue import TEXT, TEXT_DIM
from assay.extractors.registry import ExtractorRegistry
from assay.kit.db import Database, utcnow
from assay.kit.fetch import FetchPolicy
from assay.kit.ids import new_id
from assay.maintenance.orphans import QUIET, OrphanSweep
from assay.maintenance.sweeper import SweepCounts, Sweeper, sweep_lock
from assay.models import (
    BlobClaim,
    Event,
    IdempotencyRecord,
    Job,
    Namespace,
    Upload,
    VectorLogEntry,
    WebhookDelivery,
)
from assay.objects.storage import derived_key, storage_key
from assay.webhooks.dispatcher import WebhookDispatcher
from tests.conftest import ADMIN_KEY, S3_BUCKET, free_port, open_client, png_bytes
from tests.webhook_receiver import receiver

__all__ = ["receiver"]

NS = {"X-Namespace": "gc"}
SCHEMA = {"properties": {"body": {"type": "text"}, "picture": {"type": "image"}}}
TEXT_URI = TEXT.feature_uri("text_embedding")
LONG_AGO = dt.timedelta(days=60)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Texts past 16 bytes go to the blob store, where the walk of the store finds them.
    return Settings(
        data_dir=tmp_path / "data",
        admin_key=ADMIN_KEY,
        workers=0,
        small_blob_max_bytes=16,
        allow_private_urls=True,
    )


def _ctx(c: httpx.AsyncClient) -> AppContext:
    return c._transport.app.state.ctx  # type: ignore[attr-defined,no-any-return]


async def _sweep(c: httpx.AsyncClient, scan: bool = True, **overrides: Any) -> SweepCounts:
    ctx = _ctx(c)
    settings = ctx.settings.model_copy(update=overrides)
    sweeper = Sweeper(settings, ctx.db, ctx.blobs)
    return await anyio.to_thread.run_sync(lambda: sweeper.run(scan=scan))


async def _namespace(c: httpx.AsyncClient) -> None:
    text = {"feature_extractor_name": "text_extractor", "version": "v1"}
    r = await c.post("/v1/namespaces", json={"namespace_name": "gc", "feature_extractors": [text]})
    assert r.status_code == 200, r.text
    r = await c.post("/v1/buckets", headers=NS, json={"bucket_name": "b", "bucket_schema": SCHEMA})
    assert r.status_code == 200, r.text


async def _object(c: httpx.AsyncClient, text: str) -> dict[str, Any]:
    body = {"blobs": [{"property": "body", "type": "text", "content": text}]}
    r = await c.post("/v1/buckets/b/objects", headers=NS, json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _content(c: httpx.AsyncClient, obj: dict[str, Any]) -> bytes:
    blob = obj["blobs"][0]["blob_id"]
    r = await c.get(f"/v1/buckets/b/objects/{obj['object_id']}/blobs/{blob}/content", headers=NS)
    assert r.status_code == 200, r.text
    return r.content


def _ns_id(c: httpx.AsyncClient) -> str:
    return str(
        _ctx(c).db.read_sync(
            lambda s: s.scalar(
                select(Namespace.namespace_id).where(Namespace.namespace_name == "gc")
            )
        )
    )


def _age(path: Path, by: dt.timedelta = LONG_AGO) -> None:
    when = (utcnow() - by).timestamp()
    os.utime(path, (when, when))


def _write(db: Database, stmt: Any) -> None:
    db.write_sync(lambda s: s.execute(stmt))


def _count(db: Database, model: Any, *where: Any) -> int:
    return int(
        db.read_sync(lambda s: s.scalar(select(func.count()).select_from(model).where(*where)))
    )


# ----------------------------------------------------------------------------- uploads


async def test_expired_uploads_go_with_their_files_and_live_ones_stay(
    client: httpx.AsyncClient,
) -> None:
    await _namespace(client)
    data = png_bytes("UPLOAD")
    made = {}
    for name in ("expired", "pending", "confirmed"):
        r = await client.post(
            "/v1/buckets/b/uploads",
            headers=NS,
            json={"filename": f"{name}.png", "content_type": "image/png"},
        )
        assert r.status_code == 200, r.text
        made[name] = r.json()
        assert (await client.put(made[name]["presigned_url"], content=data)).status_code == 200
    r = await client.post(
        f"/v1/buckets/b/uploads/{made['confirmed']['upload_id']}/confirm", headers=NS
    )
    assert r.status_code == 200, r.text
    ctx = _ctx(client)
    folder = ctx.settings.tmp_dir / "uploads"
    expired = made["expired"]["upload_id"]
    _write(
        ctx.db,
        update(Upload).where(Upload.upload_id == expired).values(expires_at=utcnow() - LONG_AGO),
    )
    # Files no upload row owns any more (a crash between removing a row and its files): the
    # old one goes with the store walk, one written just now is left for its grace period.
    for leftover in ("upl_gone.part1", "upl_fresh"):
        (folder / leftover).write_bytes(b"half an upload")
    _age(folder / "upl_gone.part1")

    counts = await _sweep(client)

    assert counts.uploads == 1 and counts.upload_files == 2, counts
    remaining = sorted(p.name for p in folder.iterdir())
    assert remaining == sorted([made["pending"]["upload_id"], "upl_fresh"])
    r = await client.get(f"/v1/buckets/b/uploads/{expired}", headers=NS)
    assert r.status_code == 404
    for name in ("pending", "confirmed"):
        r = await client.get(f"/v1/buckets/b/uploads/{made[name]['upload_id']}", headers=NS)
        assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/buckets/b/uploads/{made['pending']['upload_id']}/confirm", headers=NS
    )
    assert r.status_code == 200 and r.json()["object_id"], r.text  # its bytes are intact
    assert (await _sweep(client)).uploads == 0  # idempotent


# ---------------------------------------------------------------- events and deliveries


async def test_events_and_deliveries_past_their_retention_go_pending_ones_stay(
    client: httpx.AsyncClient, receiver: str
) -> None:
    await _namespace(client)
    ctx, ns = _ctx(client), _ns_id(client)
    for types, url in ((["*"], receiver), (["object.deleted"], f"http://127.0.0.1:{free_port()}/")):
        r = await client.post("/v1/webhooks", headers=NS, json={"url": url, "event_types": types})
        assert r.status_code == 201, r.text
    dispatcher = WebhookDispatcher(ctx.db, FetchPolicy(allow_private=True, timeout_s=2.0))

    async def event(kind: str) -> str:
        return await ctx.db.write(lambda s: emit(s, ns, kind, ("object", "obj_x")).event_id)

    created = await event("object.created")
    deleted = await event("object.deleted")  # its delivery to the down endpoint stays PENDING
    await dispatcher.run_once()
    d = WebhookDelivery
    assert _count(ctx.db, d, d.status == "DELIVERED") == 2
    assert _count(ctx.db, d, d.status == "PENDING") == 1
    _write(ctx.db, update(d).values(created_at=utcnow() - LONG_AGO))
    _write(ctx.db, update(Event).values(dispatched_at=utcnow() - LONG_AGO))

    fresh = await event("object.created")
    await dispatcher.run_once()
    waiting = await event("object.created")  # not dispatched yet: never pruned, however old
    _write(
        ctx.db,
        update(Event).where(Event.event_id == waiting).values(occurred_at=utcnow() - LONG_AGO),
    )

    counts = await _sweep(client, scan=False)
    await dispatcher.aclose()

    assert (counts.deliveries, counts.events) == (2, 1), counts
    kept = set(ctx.db.read_sync(lambda s: s.scalars(select(Event.event_id)).all()))
    assert kept == {deleted, fresh, waiting} and created not in kept
    statuses = ctx.db.read_sync(lambda s: sorted(s.scalars(select(d.status)).all()))
    assert statuses == ["DELIVERED", "PENDING"]  # the fresh one, and the one still retrying


# ------------------------------------------------------------ idempotency and claims


async def test_idempotency_records_past_their_ttl_and_dead_claims_go(
    client: httpx.AsyncClient,
) -> None:
    ctx = _ctx(client)
    for n in (1, 2):
        r = await client.post(
            "/v1/namespaces",
            json={"namespace_name": f"idem{n}"},
            headers={"Idempotency-Key": f"key-{n}"},
        )
        assert r.status_code == 200, r.text
    first = ctx.db.read_sync(
        lambda s: s.scalars(
            select(IdempotencyRecord.scope_key).order_by(IdempotencyRecord.created_at)
        ).first()
    )
    old = utcnow() - dt.timedelta(seconds=ctx.settings.idempotency_ttl_s + 60)
    _write(
        ctx.db,
        update(IdempotencyRecord)
        .where(IdempotencyRecord.scope_key == first)
        .values(created_at=old),
    )
    claim_rows = [
        {"claim_id": f"clm_{kind}_{n}", "storage_key": f"ns_x/aa/{n}", "kind": kind,
         "expires_at": utcnow() + dt.timedelta(minutes=n * 2 - 3)}
        for kind in ("use", "remove") for n in (1, 2)
    ]  # fmt: skip
    _write(ctx.db, insert(BlobClaim).values(claim_rows))

    counts = await _sweep(client, scan=False)

    assert (counts.idempotency, counts.claims) == (1, 2), counts
    live = ctx.db.read_sync(lambda s: sorted(s.scalars(select(BlobClaim.claim_id)).all()))
    assert live == ["clm_remove_2", "clm_use_2"]
    r = await client.post(  # the second key still replays its first answer
        "/v1/namespaces", json={"namespace_name": "idem2"}, headers={"Idempotency-Key": "key-2"}
    )
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------------- blob bytes


async def test_unreferenced_bytes_go_after_their_grace_and_referenced_ones_stay(
    client: httpx.AsyncClient,
) -> None:
    await _namespace(client)
    ctx, ns = _ctx(client), _ns_id(client)
    kept = await _object(client, "bytes an object references " * 4)
    orphan = b"left by a process that died before committing its object"
    old_key = storage_key(ns, hashlib.sha256(orphan).hexdigest())
    new_key = storage_key(ns, hashlib.sha256(b"written a moment ago").hexdigest())
    ctx.blobs.put_bytes(orphan, old_key)
    ctx.blobs.put_bytes(b"written a moment ago", new_key)
    root = Path(ctx.settings.blob_store.removeprefix("file://"))
    for path in root.rglob("*"):
        if path.is_file() and path.name != new_key.rsplit("/", 1)[-1]:
            _age(path)  # the referenced bytes are old too: age never decides alone
    tmp = ctx.blobs.local_path(old_key).with_name(".tmp-crashed")
    tmp.write_bytes(b"half")
    _age(tmp)

    counts = await _sweep(client)

    assert (counts.blobs, counts.temp_files) == (1, 1), counts
    assert not ctx.blobs.exists(old_key) and not tmp.exists()
    assert ctx.blobs.exists(new_key)  # within its grace period
    assert await _content(client, kept) == b"bytes an object references " * 4
    assert (await _sweep(client)).blobs == 0
    assert (await _sweep(client, blob_grace_s=0)).blobs == 1  # its grace over, it goes too


async def test_a_registration_racing_sweeps_elsewhere_always_keeps_its_bytes(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Each round leaves orphaned bytes behind, then registers an object with the same content
    while another process (its own Database and store) sweeps: either the sweep removes the
    bytes first and the registration writes them again, or the registration's claim makes the
    sweep leave them. The object's content is always there."""
    await _namespace(client)
    ctx, ns = _ctx(client), _ns_id(client)
    other = Database(settings.database_url)
    sweep = OrphanSweep(
        other,
        make_blob_store(settings.blob_store),
        settings.tmp_dir / "uploads",
        settings.data_dir / "indexes",
        grace=dt.timedelta(0),
        limit=500,
    )
    objects: list[tuple[dict[str, Any], bytes]] = []
    removed = 0
    try:
        for n in range(12):
            text = f"round {n}: the same content, orphaned and registered again"
            ctx.blobs.put_bytes(
                text.encode(), storage_key(ns, hashlib.sha256(text.encode()).hexdigest())
            )
            sweeping = asyncio.ensure_future(anyio.to_thread.run_sync(sweep.run, utcnow()))
            await asyncio.sleep(0.002 * (n % 4))  # the registration lands at varying moments
            objects.append((await _object(client, text), text.encode()))
            removed += (await sweeping).blobs
    finally:
        other.close()
    for obj, data in objects:
        assert await _content(client, obj) == data
    assert (await _sweep(client, blob_grace_s=0)).blobs == 0  # every key is referenced now
    assert removed >= 1  # some sweeps did get to the orphaned bytes first


# ---------------------------------------------------------------------- thumbnails


class _Thumbnails(Extractor):
    """text_extractor's contract with made-up vectors and a thumbnail per object."""

    spec = TEXT
    reads = frozenset({"text"})

    def extract(self, obj: ObjectInput, params: dict[str, Any]) -> list[DocumentDraft]:
        thumb = DerivedBlob(b"\xff\xd8 jpeg of " + obj.object_id.encode(), "image/jpeg", 8, 8)
        return [
            DocumentDraft(
                b.blob_id, b.property, {"text": "x"},
                features={TEXT_URI: [0.5] * TEXT_DIM}, derived_blobs={"thumbnail": thumb},
            )
            for b in obj.blobs
        ]  # fmt: skip


@dataclass(frozen=True)
class _BatchSubmittedMidSweep(OrphanSweep):
    """A sweep during which a batch of the namespace is queued, just before bytes go."""

    namespace_id: str = ""

    def _remove_claimed(
        self, candidates: list[tuple[str, str]], before_delete: Callable[[str], None] | None = None
    ) -> list[str]:
        if before_delete is not None and candidates:  # removing thumbnails, not blob bytes
            job = Job(job_id=new_id("job"), namespace_id=self.namespace_id, kind=JOB_KIND)
            self.db.write_sync(lambda s: s.add(job))
        return super()._remove_claimed(candidates, before_delete)


async def _submit(c: httpx.AsyncClient, ids: list[str]) -> None:
    r = await c.post("/v1/buckets/b/batches", headers=NS, json={"object_ids": ids})
    r = await c.post(f"/v1/buckets/b/batches/{r.json()['batch_id']}/submit", headers=NS)
    assert r.status_code == 200, r.text


async def _run_jobs(c: httpx.AsyncClient, registry: ExtractorRegistry | None = None) -> None:
    ctx = _ctx(c)
    body = BatchExtraction(ctx.db, ctx.keeper, registry or ctx.registry)
    await LocalWorkers(ctx.db, {JOB_KIND: body}).run_until_idle()


async def test_thumbnails_of_deleted_documents_go_once_extraction_is_quiet(
    client: httpx.AsyncClient,
) -> None:
    await _namespace(client)
    ctx, ns = _ctx(client), _ns_id(client)
    registry = ExtractorRegistry(implementations=[_Thumbnails()])
    gone = await _object(client, "the object whose document goes")
    kept = await _object(client, "the object whose document stays")
    await _submit(client, [gone["object_id"], kept["object_id"]])
    await _run_jobs(client, registry)

    def thumbnail_key(obj: dict[str, Any]) -> str:
        sha = hashlib.sha256(b"\xff\xd8 jpeg of " + obj["object_id"].encode()).hexdigest()
        return derived_key(ns, sha)

    r = await client.get(f"/v1/objects/{kept['object_id']}/documents", headers=NS)
    (doc,) = r.json()
    thumb_url = f"/v1/collections/{doc['collection_id']}/documents/{doc['document_id']}/thumbnail"
    assert all(ctx.blobs.exists(thumbnail_key(o)) for o in (gone, kept))
    assert (
        await client.delete(f"/v1/buckets/b/objects/{gone['object_id']}", headers=NS)
    ).is_success
    for obj in (gone, kept):
        _age(ctx.blobs.local_path(thumbnail_key(obj)))

    # A batch waiting to run may write documents pointing at any thumbnail: none is removed.
    third = await _object(client, "a third object, queued")
    await _submit(client, [third["object_id"]])
    assert (await _sweep(client)).derived == 0
    assert ctx.blobs.exists(thumbnail_key(gone))

    await _run_jobs(client, registry)
    assert (await _sweep(client)).derived == 0  # it ran a moment ago: still not quiet
    quiet = utcnow() - QUIET - dt.timedelta(seconds=1)
    _write(ctx.db, update(Job).values(updated_at=quiet))

    # A batch submitted while a sweep removes the bytes: they are put back.
    racing = _BatchSubmittedMidSweep(
        ctx.db, ctx.blobs, ctx.settings.tmp_dir / "uploads", ctx.settings.data_dir / "indexes",
        grace=dt.timedelta(0), limit=500, namespace_id=ns,
    )  # fmt: skip
    aged = ctx.blobs.local_path(thumbnail_key(gone)).stat().st_mtime
    assert (await anyio.to_thread.run_sync(racing.run, utcnow())).derived == 0
    restored = ctx.blobs.local_path(thumbnail_key(gone))  # BlobNotFound if it were gone
    assert restored.stat().st_mtime > aged  # removed, then written back
    assert restored.read_bytes() == b"\xff\xd8 jpeg of " + gone["object_id"].encode()
    _write(ctx.db, update(Job).values(status="done", updated_at=quiet))
    _age(restored)

    counts = await _sweep(client)
    assert counts.derived == 1, counts
    assert not ctx.blobs.exists(thumbnail_key(gone))
    r = await client.get(thumb_url, headers=NS)
    assert r.status_code == 200 and r.content.startswith(b"\xff\xd8 jpeg of"), r.text


# ---------------------------------------------------------------------- vector log


class _Vectors(Extractor):
    """text_extractor's contract, each object's vector a one-hot of its `slot` metadata."""

    spec = TEXT
    reads = frozenset({"text"})

    def extract(self, obj: ObjectInput, params: dict[str, Any]) -> list[DocumentDraft]:
        vector = np.zeros(TEXT_DIM, dtype=np.float32)
        vector[int(obj.metadata["slot"])] = 1.0
        return [
            DocumentDraft(b.blob_id, b.property, {"text": "x"}, features={TEXT_URI: vector})
            for b in obj.blobs
        ]


async def _slot_object(c: httpx.AsyncClient, slot: int, ns: dict[str, str] = NS) -> str:
    body = {
        "metadata": {"slot": slot},
        "blobs": [{"property": "body", "type": "text", "content": f"slot {slot}"}],
    }
    r = await c.post("/v1/buckets/b/objects", headers=ns, json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["object_id"])


async def _nearest(c: httpx.AsyncClient, slot: int) -> list[str]:
    query = [0.0] * TEXT_DIM
    query[slot] = 1.0
    search = {"feature_uri": TEXT_URI, "query": query, "top_k": 10}
    stage = {
        "stage_name": "s",
        "config": {"stage_id": "feature_search", "parameters": {"searches": [search]}},
    }
    body = {"collection_identifiers": ["text_extractor"], "stages": [stage], "inputs": {}}
    r = await c.post("/v1/retrievers/execute", headers=NS, json=body)
    assert r.status_code == 200, r.text
    return [hit["source"]["object_id"] for hit in r.json()["results"]]


async def test_vector_log_rows_every_index_has_passed_go_and_searches_stay_right(
    settings: Settings,
) -> None:
    """File indexes (SQLite): rows up to the watermark of the index file go, later ones stay
    and are replayed, by the open index and by one loaded from its file after a restart.
    pgvector (PostgreSQL): nothing replays the log, so every row past the retention goes."""
    registry = ExtractorRegistry(implementations=[_Vectors()])
    file_indexes = settings.is_sqlite
    async with open_client(settings) as c:
        await _namespace(c)
        ids = [await _slot_object(c, slot) for slot in range(3)]
        await _submit(c, ids)
        await _run_jobs(c, registry)
        assert (await _nearest(c, 1))[0] == ids[1]  # the index opens and saves its file
        ids.append(await _slot_object(c, 3))
        await _submit(c, [ids[3]])
        await _run_jobs(c, registry)
        assert (await c.delete(f"/v1/buckets/b/objects/{ids[0]}", headers=NS)).is_success
        db = _ctx(c).db
        assert _count(db, VectorLogEntry) == 5  # 4 vectors added, 1 removed

        assert (await _sweep(c, scan=False)).vector_log == 0  # younger than the retention
        counts = await _sweep(c, scan=False, vector_log_retention_h=0)
        assert counts.vector_log == (3 if file_indexes else 5), counts
        assert (await _nearest(c, 3))[0] == ids[3]  # the open index replays the rest
        assert ids[0] not in await _nearest(c, 0)
    async with open_client(settings) as c:  # a restart loads the index from its file
        assert (await _nearest(c, 3))[0] == ids[3]
        assert ids[0] not in await _nearest(c, 0)
        assert sorted(await _nearest(c, 2)) == sorted(ids[1:])


# ------------------------------------------------------------------- several sweepers


async def test_the_background_loop_sweeps_and_one_process_sweeps_at_a_time(
    settings: Settings,
) -> None:
    fast = settings.model_copy(update={"workers": 1, "gc_interval_s": 0.05})
    async with open_client(fast) as c:
        ctx = _ctx(c)
        _write(
            ctx.db,
            insert(BlobClaim).values(
                claim_id="clm_dead", storage_key="ns_x/aa/b", kind="use",
                expires_at=utcnow() - dt.timedelta(hours=2),
            ),
        )  # fmt: skip
        for _ in range(200):  # the loop the lifespan started prunes it
            if not _count(ctx.db, BlobClaim):
                break
            await asyncio.sleep(0.02)
        assert not _count(ctx.db, BlobClaim)

    # Two "processes" (their own Database each): while one sweeps, the other skips its turn.
    first, second = Database(settings.database_url), Database(settings.database_url)
    try:
        held, release = threading.Event(), threading.Event()
        outcome: list[bool] = []

        def sweep_slowly() -> None:
            with sweep_lock(first, settings.data_dir) as mine:
                outcome.append(mine)
                held.set()
                release.wait(10)

        holder = threading.Thread(target=sweep_slowly)
        holder.start()
        assert held.wait(10) and outcome == [True]
        sweeper = Sweeper(settings, second, make_blob_store(settings.blob_store))
        assert (await anyio.to_thread.run_sync(sweeper.run)).skipped
        release.set()
        holder.join()
        assert not (await anyio.to_thread.run_sync(sweeper.run)).skipped
    finally:
        first.close()
        second.close()


# ---------------------------------------------------------------------------------- S3


@pytest.mark.s3
async def test_on_s3_the_walk_removes_orphaned_bytes_and_staging_keys(
    tmp_path: Path, s3_endpoint: str
) -> None:
    on_s3 = Settings(
        data_dir=tmp_path / "data",
        admin_key=ADMIN_KEY,
        workers=0,
        blob_store=f"s3://{S3_BUCKET}/gc-{uuid.uuid4().hex[:8]}",
        s3_endpoint_url=s3_endpoint,
        s3_region="us-east-1",
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        small_blob_max_bytes=0,
    )
    async with open_client(on_s3) as c:
        await _namespace(c)
        ctx, ns = _ctx(c), _ns_id(c)
        kept = await _object(c, "bytes in S3 that an object references")
        r = await c.post(
            "/v1/buckets/b/uploads",
            headers=NS,
            json={"filename": "a.png", "content_type": "image/png"},
        )
        live_upload = r.json()
        async with httpx.AsyncClient() as raw:
            r = await raw.put(live_upload["presigned_url"], content=png_bytes("S3"))
            assert r.status_code == 200, r.text
        orphan = b"orphaned in S3"
        orphan_key = storage_key(ns, hashlib.sha256(orphan).hexdigest())
        ctx.blobs.put_bytes(orphan, orphan_key)
        ctx.blobs.put_bytes(b"staged, then its upload went", f"{ns}/uploads/upl_gone")

        counts = await _sweep(c, blob_grace_s=0)  # S3 stamps keys with now: no grace here

        assert (counts.blobs, counts.upload_files) == (1, 1), counts
        assert not ctx.blobs.exists(orphan_key)
        assert not ctx.blobs.exists(f"{ns}/uploads/upl_gone")
        assert ctx.blobs.exists(f"{ns}/uploads/{live_upload['upload_id']}")
        assert await _content(c, kept) == b"bytes in S3 that an object references"
