"""Registering objects end to end: store bytes outside the transaction, then commit the rows.

Bytes are written before the rows that reference them, and the request's `BlobClaims` keep
their keys locked until the rows are committed; whatever a failed registration stored and no
committed row uses is removed again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from assay.errors import AppError
from assay.kit.db import Database
from assay.kit.schemas import ItemFailure
from assay.kit.ttlcache import TTLCache
from assay.objects import service
from assay.objects.materialize import Materializer, PreparedObject
from assay.objects.schemas import ObjectCreate, ObjectOut
from assay.objects.service import NO_QUOTA, BucketRef, Quota
from assay.objects.sources import LocalFile
from assay.objects.storage import BlobKeeper


@dataclass(frozen=True)
class Registrar:
    db: Database
    keeper: BlobKeeper
    materializer: Materializer
    lookups: TTLCache[tuple[str, ...], Any]
    quota: Quota = NO_QUOTA

    async def bucket(self, namespace_id: str, bucket_ident: str) -> BucketRef:
        """The bucket by id or name; cached briefly (registration re-checks it exists)."""
        key = ("bucket", namespace_id, bucket_ident)
        bucket: BucketRef | None = self.lookups.get(key)
        if bucket is None:
            found = await self.db.read(lambda s: service.find_bucket(s, namespace_id, bucket_ident))
            bucket = replace(found, quota=self.quota)  # cached with it: no copy per request
            self.lookups.put(key, bucket)
        elif bucket.quota != self.quota:
            bucket = replace(bucket, quota=self.quota)
        return bucket

    async def register_one(
        self, bucket: BucketRef, body: ObjectCreate, files: Mapping[str, LocalFile] | None = None
    ) -> ObjectOut:
        """One object: all of it is registered, or nothing (and no stray bytes) is."""
        claims = self.keeper.claims(bucket.namespace_id)
        committed: set[str] = set()
        try:
            schema = bucket.bucket_schema
            prepared = await self.materializer.prepare(claims, schema, body, files=files)
            (out,) = await self.db.write_many(service.register_many, (bucket, [prepared]))
            committed = prepared.storage_keys
            return out
        finally:
            await claims.release(committed)

    async def register_many(
        self, bucket: BucketRef, bodies: list[ObjectCreate]
    ) -> tuple[list[ObjectOut], list[ItemFailure]]:
        """Each object succeeds or fails on its own; the successes commit together."""
        claims = self.keeper.claims(bucket.namespace_id)
        prepared: list[PreparedObject] = []
        failed: list[ItemFailure] = []
        committed: set[str] = set()
        try:
            for index, body in enumerate(bodies):
                try:
                    loc = ("objects", index)
                    prepared.append(
                        await self.materializer.prepare(claims, bucket.bucket_schema, body, loc)
                    )
                except AppError as exc:
                    failed.append(ItemFailure.of(index, exc))
            succeeded: list[ObjectOut] = []
            if prepared:
                succeeded = await self.db.write_many(service.register_many, (bucket, prepared))
                committed = set().union(*(p.storage_keys for p in prepared))
            return succeeded, failed
        finally:
            await claims.release(committed)

    async def delete(self, namespace_id: str, bucket_ident: str, object_id: str) -> None:
        """Delete an object's rows, then the bytes no other object shares."""
        keys = await self.db.write(
            lambda s: service.delete(s, namespace_id, bucket_ident, object_id)
        )
        await self.keeper.remove_unreferenced(namespace_id, keys)
