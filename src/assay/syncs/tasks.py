"""The job body of a sync run: list the source, register new or changed keys, submit batches.

A (key, ETag) is claimed by inserting its `sync_keys` row in the same transaction that
registers its object, and the row's primary key lets only one insert win: two overlapping
runs (or a run repeated after its worker died) can read the same key, but only one of them
commits an object for it; the other finds its claim taken and counts the key as skipped.
Bytes are read and checked outside any transaction, a few keys at a time.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session

from assay.context import AppContext
from assay.errors import AppError, ValidationFailed
from assay.kit.db import Database, utcnow
from assay.models import Job
from assay.objects import service as objects
from assay.objects.materialize import Materializer, PreparedObject
from assay.objects.schemas import ObjectCreate
from assay.objects.service import NO_QUOTA, BucketRef, Quota, find_bucket
from assay.objects.storage import BlobKeeper
from assay.syncs import repository as repo
from assay.syncs import service
from assay.syncs import source as source_rules
from assay.syncs.repository import SyncRepository
from assay.syncs.source import KeyTooLarge, KeyVanished, Listed, S3Source, SourceConfig, SourceError

CONCURRENCY = 8  # keys read and checked at once by one run


@dataclass(frozen=True)
class _Plan:
    """What a run needs of its sync, read once at the start."""

    sync_id: str
    bucket: BucketRef
    config: SourceConfig
    filters: dict[str, Any]
    mapping: dict[str, str]
    files: dict[str, str]
    auto_submit: bool
    batch_size: int

    @property
    def namespace_id(self) -> str:
        return self.bucket.namespace_id


@dataclass
class _Tally:
    """A run's counts; `skipped`, `errors` and `new_errors` are what is not yet saved."""

    started_at: dt.datetime = field(default_factory=utcnow)
    created: int = 0
    total_skipped: int = 0
    total_errors: int = 0
    batches: int = 0
    stopped: str | None = None
    skipped: int = 0
    errors: int = 0
    new_errors: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, n: int = 1) -> None:
        self.skipped += n
        self.total_skipped += n

    def fail(self, key: str | None, message: str) -> None:
        self.errors += 1
        self.total_errors += 1
        self.new_errors.append({"key": key, "message": message[:1000], "at": utcnow().isoformat()})

    def unsaved(self) -> tuple[int, int, list[dict[str, Any]]]:
        return self.skipped, self.errors, list(self.new_errors)

    def saved(self, unsaved: tuple[int, int, list[dict[str, Any]]]) -> None:
        """Forget what was saved (errors may have been added meanwhile by other keys)."""
        self.skipped -= unsaved[0]
        self.errors -= unsaved[1]
        del self.new_errors[: len(unsaved[2])]

    def summary(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "finished_at": utcnow().isoformat(),
            "objects_created": self.created,
            "objects_skipped": self.total_skipped,
            "errors": self.total_errors,
            "batches_submitted": self.batches,
            "stopped": self.stopped,
        }


class SyncRun:
    """Runs `sync.run` jobs."""

    def __init__(
        self,
        db: Database,
        keeper: BlobKeeper,
        materializer: Materializer,
        *,
        max_bytes: int,
        allow_private: bool,
        concurrency: int = CONCURRENCY,
        quota: Quota = NO_QUOTA,
    ) -> None:
        self.quota = quota
        self.db = db
        self.keeper = keeper
        self.materializer = materializer
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self.concurrency = concurrency

    @classmethod
    def from_context(cls, ctx: AppContext) -> SyncRun:
        """A body using the process's database, blob store and limits."""
        s = ctx.settings
        materializer = Materializer(ctx.fetch_policy, s.tmp_dir, s.small_blob_max_bytes)
        return cls(
            ctx.db,
            ctx.keeper,
            materializer,
            max_bytes=s.fetch_max_bytes,
            allow_private=s.allow_private_urls,
            quota=Quota(s.namespace_max_objects, s.namespace_max_bytes),
        )

    async def run(self, job: Job) -> None:
        ns, sync_id = job.namespace_id, job.payload["sync_id"]
        plan = await self.db.read(lambda s: _load(s, ns, sync_id))
        if plan is None:  # deleted or paused since it was queued
            return
        plan = replace(plan, bucket=replace(plan.bucket, quota=self.quota))
        tally = _Tally()
        try:
            url = plan.config.endpoint_url
            problem = url and await service.endpoint_problem(url, self.allow_private)
            if problem:
                raise SourceError(f"endpoint refused: {problem}")
            source = await anyio.to_thread.run_sync(S3Source, plan.config)
            await self._all_pages(plan, source, tally)
        except SourceError as exc:
            tally.fail(None, exc.message)
            tally.stopped = "the source could not be listed"
        if plan.auto_submit and tally.stopped != "paused or deleted":
            await self._submit(plan, tally, final=True)
        await self._save(plan.namespace_id, plan.sync_id, tally, final=True)

    async def give_up(self, job: Job, error: str) -> None:
        """Every attempt failed: say so on the sync, and poll again only after the interval."""
        tally = _Tally()
        tally.fail(None, f"the run failed: {error}")
        tally.stopped = "failed"
        await self._save(job.namespace_id, job.payload["sync_id"], tally, final=True)

    async def _all_pages(self, plan: _Plan, source: S3Source, tally: _Tally) -> None:
        token: str | None = None
        while True:
            items, token = await anyio.to_thread.run_sync(source.list_page, token)
            await self._page(plan, source, items, tally)
            if plan.auto_submit:
                await self._submit(plan, tally, final=False)
            await self._save(plan.namespace_id, plan.sync_id, tally)
            if token is None:
                return
            if not await self.db.read(lambda s: _still_active(s, plan)):
                tally.stopped = "paused or deleted"
                return

    async def _page(
        self, plan: _Plan, source: S3Source, items: list[Listed], tally: _Tally
    ) -> None:
        prefix = plan.config.prefix
        chosen = [
            i
            for i in items
            if source_rules.wanted(source_rules.relative_key(i.key, prefix), plan.filters)
        ]
        keys = [i.key for i in chosen]
        known = await self.db.read(lambda s: repo.known_keys(s, plan.sync_id, keys))
        todo = [i for i in chosen if (i.key, i.etag) not in known]
        tally.skip(len(chosen) - len(todo))
        gate = asyncio.Semaphore(self.concurrency)
        async with asyncio.TaskGroup() as group:
            for item in todo:
                group.create_task(self._one(plan, source, item, tally, gate))

    async def _one(
        self, plan: _Plan, source: S3Source, item: Listed, tally: _Tally, gate: asyncio.Semaphore
    ) -> None:
        async with gate:
            try:
                if item.size > self.max_bytes:  # no need to start the download
                    raise KeyTooLarge(f"object is larger than the limit of {self.max_bytes} bytes")
                fetched = await anyio.to_thread.run_sync(source.read, item.key, self.max_bytes)
            except KeyVanished:
                tally.skip()
                return
            except KeyTooLarge as exc:
                await self._failed(plan, item.key, item.etag, exc.message, tally)
                return
            except SourceError as exc:  # may pass: not recorded, so the next run tries again
                tally.fail(item.key, exc.message)
                return
            content_type = source_rules.content_type_of(fetched.content_type, item.key)
            choice = source_rules.choose_property(content_type, plan.mapping, plan.files)
            if isinstance(choice, str):
                await self._failed(plan, item.key, fetched.etag, choice, tally)
                return
            body = _object_body(plan, item.key, fetched.etag, content_type, fetched.data, choice)
            await self._register(plan, item.key, fetched.etag, body, tally)

    async def _register(
        self, plan: _Plan, key: str, etag: str, body: ObjectCreate, tally: _Tally
    ) -> None:
        claims = self.keeper.claims(plan.namespace_id)
        committed: set[str] = set()
        try:
            prepared = await self.materializer.prepare(claims, plan.bucket.bucket_schema, body)
            item = (plan.bucket, plan.sync_id, key, etag, prepared)
            object_id = await self.db.write_many(_claim_and_register, item)
            if object_id is None:
                tally.skip()  # an overlapping run registered this (key, ETag) first
            else:
                committed = prepared.storage_keys
                tally.created += 1
        except ValidationFailed as exc:  # the bytes are not what their type says: for good
            await self._failed(plan, key, etag, exc.message, tally)
        except AppError as exc:
            tally.fail(key, exc.message)
        finally:
            await claims.release(committed)

    async def _failed(self, plan: _Plan, key: str, etag: str, message: str, tally: _Tally) -> None:
        """Record a key that cannot succeed until it changes, so later runs skip it."""
        row = _key_row({"sync_id": plan.sync_id, "key": key, "etag": etag, "error": message})
        if await self.db.write(lambda s: repo.claim_keys(s, [row])):
            tally.fail(key, message)
        else:
            tally.skip()  # an overlapping run recorded it first

    async def _submit(self, plan: _Plan, tally: _Tally, *, final: bool) -> None:
        ns, bucket_id = plan.namespace_id, plan.bucket.bucket_id
        try:
            tally.batches += await self.db.write(
                lambda s: service.submit_unbatched(
                    s, ns, plan.sync_id, bucket_id, plan.batch_size, final=final
                )
            )
        except AppError as exc:
            tally.fail(None, f"auto-submit failed: {exc.message}")

    async def _save(self, ns: str, sync_id: str, tally: _Tally, *, final: bool = False) -> None:
        """Add the run's unsaved counts to the sync; at the end, also when it ran."""
        unsaved = tally.unsaved()
        summary = tally.summary() if final else None
        await self.db.write(lambda s: service.save_run(s, ns, sync_id, *unsaved, summary))
        tally.saved(unsaved)


async def enqueue_due_syncs(db: Database) -> int:
    """Queue a run of every continuous sync that is due; call it from the worker loop.

    Asks with a read first: an idle server (no sync due, the common case) then takes no write
    transaction, so it never waits on, or holds, the writer's lock every poll."""
    if not await db.read(lambda s: repo.any_due(s, utcnow())):
        return 0
    return await db.write(lambda s: service.enqueue_due(s, utcnow()))


def _object_body(
    plan: _Plan, key: str, etag: str, content_type: str, data: bytes, choice: tuple[str, str]
) -> ObjectCreate:
    prop, prop_type = choice
    # `data` with base64 carries the exact bytes for every blob type (text and JSON included).
    blob_data = {
        "base64": base64.b64encode(data).decode(),
        "mime_type": content_type,
        "filename": PurePosixPath(key).name or key,
    }
    metadata = {"sync_id": plan.sync_id, "source_bucket": plan.config.bucket}
    metadata |= {"source_key": key, "source_etag": etag}
    blob = {"property": prop, "type": prop_type, "data": blob_data}
    return ObjectCreate.model_validate({"metadata": metadata, "blobs": [blob]})


# --- inside transactions ---------------------------------------------------------------------

_Item = tuple[BucketRef, str, str, str, PreparedObject]


def _claim_and_register(session: Session, items: list[_Item]) -> list[str | None]:
    """Claim each (sync, key, ETag) and register the objects of the claims won."""
    rows = {(s, k, e): {"sync_id": s, "key": k, "etag": e} for _, s, k, e, _ in items}
    won = repo.claim_keys(session, [_key_row(r) for r in rows.values()])
    winners: list[int] = []
    for index, (_, s, k, e, _) in enumerate(items):
        if (s, k, e) in won:
            won.discard((s, k, e))  # one object per claim, even if a group holds it twice
            winners.append(index)
    registered = objects.register_many(session, [(items[i][0], [items[i][4]]) for i in winners])
    ids: list[str | None] = [None] * len(items)
    for index, (out,) in zip(winners, registered, strict=True):
        ids[index] = out.object_id
    repo.set_objects(session, [(*items[i][1:4], ids[i]) for i in winners])  # type: ignore[misc]
    for sync_id, n in Counter(items[i][1] for i in winners).items():
        repo.add_counts(session, sync_id, objects_created=n)
    return ids


def _key_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"object_id": None, "error": None, "batch_id": None, "created_at": utcnow(), **row}


def _load(
    session: Session, namespace_id: str, sync_id: str, paused_too: bool = False
) -> _Plan | None:
    sync = SyncRepository(session, namespace_id).get(sync_id)
    if sync is None or (sync.status == "PAUSED" and not paused_too):
        return None
    bucket = find_bucket(session, namespace_id, sync.bucket_id)
    config = SourceConfig(
        bucket=sync.source_bucket,
        prefix=sync.prefix,
        endpoint_url=sync.endpoint_url,
        region=sync.region,
        access_key_id=sync.access_key_id,
        secret_access_key=sync.secret_access_key,
        session_token=sync.session_token,
    )
    return _Plan(
        sync_id=sync.sync_id,
        bucket=bucket,
        config=config,
        filters=dict(sync.file_filters),
        mapping=dict(sync.property_mapping),
        files=source_rules.file_properties(bucket.bucket_schema),
        auto_submit=sync.auto_submit,
        batch_size=sync.batch_size,
    )


def _still_active(session: Session, plan: _Plan) -> bool:
    sync = SyncRepository(session, plan.namespace_id).get(plan.sync_id)
    return sync is not None and sync.status != "PAUSED"
