"""Object use-cases inside one transaction: register prepared objects, get, list, delete."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from assay.buckets.repository import BucketRepository
from assay.errors import NotFound, QuotaExceeded, ValidationFailed
from assay.events.outbox import emit, emit_many
from assay.kit.db import utcnow
from assay.kit.ids import new_id
from assay.kit.paging import SortKey, build_filter, paginate
from assay.kit.schemas import ListRequest
from assay.models import Blob, Object
from assay.objects.materialize import PreparedObject
from assay.objects.repository import ObjectRepository, filter_field, insert_object_rows
from assay.objects.schemas import ObjectOut


@dataclass(frozen=True)
class Quota:
    """Most objects and blob bytes a namespace may hold over all its buckets (0: no limit)."""

    max_objects: int = 0
    max_bytes: int = 0


NO_QUOTA = Quota()


@dataclass(frozen=True)
class BucketRef:
    namespace_id: str
    bucket_id: str
    bucket_schema: dict
    quota: Quota = NO_QUOTA  # the namespace's, applied when objects are registered


def find_bucket(session: Session, namespace_id: str, ident: str) -> BucketRef:
    bucket = BucketRepository(session, namespace_id).get_by_ident(ident)
    if bucket is None:
        raise NotFound(f"bucket '{ident}' not found")
    return BucketRef(namespace_id, bucket.bucket_id, bucket.bucket_schema)


Registration = tuple[BucketRef, list[PreparedObject]]


def register_many(session: Session, registrations: list[Registration]) -> list[list[ObjectOut]]:
    """`register` for several requests at once: one multi-row INSERT per table for all."""
    for bucket_id, (namespace_id, count, size) in _bucket_deltas(registrations).items():
        if not BucketRepository(session, namespace_id).add_stats(bucket_id, count, size):
            raise NotFound("bucket was deleted while its objects were being registered")
    _check_quotas(session, registrations)
    now = utcnow()
    answers: list[list[ObjectOut]] = []
    objects: list[dict[str, Any]] = []
    blobs: list[dict[str, Any]] = []
    small: list[dict[str, Any]] = []
    for bucket, prepared in registrations:
        outs = []
        for p in prepared:
            obj = _object_row(bucket, p, now)
            rows = _blob_rows(bucket, obj["object_id"], p, now)
            objects.append(obj)
            blobs += rows
            small += [
                {"storage_key": b.storage_key, "namespace_id": bucket.namespace_id, "data": b.data}
                for b in p.blobs
                if b.data is not None
            ]
            outs.append(ObjectOut.model_validate({**obj, "blobs": rows, "warnings": p.warnings}))
        answers.append(outs)
    insert_object_rows(session, objects, blobs, small)
    created = [
        (o["namespace_id"], ("object", o["object_id"]),
         {"object_id": o["object_id"], "bucket_id": o["bucket_id"]})
        for o in objects
    ]  # fmt: skip
    emit_many(session, "object.created", created)
    return answers


def _check_quotas(session: Session, registrations: list[Registration]) -> None:
    """Raise QuotaExceeded if a namespace now holds more than its quota (the counters were
    just raised in this transaction, so concurrent registrations cannot both slip under)."""
    quotas = {b.namespace_id: b.quota for b, _ in registrations if b.quota != NO_QUOTA}
    for namespace_id, quota in quotas.items():
        objects, size = BucketRepository(session, namespace_id).totals()
        if quota.max_objects and objects > quota.max_objects:
            raise QuotaExceeded(
                f"the namespace may hold {quota.max_objects} objects; this would make {objects}"
            )
        if quota.max_bytes and size > quota.max_bytes:
            raise QuotaExceeded(
                f"the namespace may hold {quota.max_bytes} bytes of blobs; this would make {size}"
            )


def _bucket_deltas(registrations: list[Registration]) -> dict[str, tuple[str, int, int]]:
    deltas: dict[str, tuple[str, int, int]] = {}
    for bucket, prepared in registrations:
        _, count, size = deltas.get(bucket.bucket_id, (bucket.namespace_id, 0, 0))
        added = sum(b.size_bytes for p in prepared for b in p.blobs)
        deltas[bucket.bucket_id] = (bucket.namespace_id, count + len(prepared), size + added)
    return deltas


def _object_row(bucket: BucketRef, p: PreparedObject, now: dt.datetime) -> dict[str, Any]:
    return {
        "object_id": new_id("obj"),
        "namespace_id": bucket.namespace_id,
        "bucket_id": bucket.bucket_id,
        "key_prefix": p.key_prefix,
        "metadata": p.metadata,
        "properties": p.properties,
        "status": "DRAFT",
        "created_at": now,
        "updated_at": now,
    }


def _blob_rows(
    bucket: BucketRef, object_id: str, p: PreparedObject, now: dt.datetime
) -> list[dict[str, Any]]:
    return [
        {
            "blob_id": new_id("blob"),
            "object_id": object_id,
            "namespace_id": bucket.namespace_id,
            "position": i,
            "property": b.property,
            "type": b.type,
            "sha256": b.sha256,
            "size_bytes": b.size_bytes,
            "content_type": b.content_type,
            "storage_key": b.storage_key,
            "filename": b.filename,
            "source_url": b.source_url,
            "key_prefix": b.key_prefix,
            "metadata": b.metadata,
            "created_at": now,
        }
        for i, b in enumerate(p.blobs)
    ]


def get(session: Session, namespace_id: str, bucket_ident: str, object_id: str) -> ObjectOut:
    bucket = find_bucket(session, namespace_id, bucket_ident)
    return to_out(_get(session, bucket, object_id))


def _get(session: Session, bucket: BucketRef, object_id: str) -> Object:
    obj = ObjectRepository(session, bucket.namespace_id, bucket.bucket_id).get(object_id)
    if obj is None:
        raise NotFound(f"object '{object_id}' not found")
    return obj


def delete(session: Session, namespace_id: str, bucket_ident: str, object_id: str) -> set[str]:
    """Delete an object; returns the storage keys its blobs used."""
    bucket = find_bucket(session, namespace_id, bucket_ident)
    repo = ObjectRepository(session, namespace_id, bucket.bucket_id)
    obj = _get(session, bucket, object_id)
    keys = {b.storage_key for b in obj.blobs}
    size = sum(b.size_bytes for b in obj.blobs)
    repo.delete(obj)
    data = {"object_id": object_id, "bucket_id": bucket.bucket_id}
    emit(session, namespace_id, "object.deleted", ("object", object_id), data)
    session.flush()
    repo.drop_unreferenced_small_bytes(keys)
    BucketRepository(session, namespace_id).add_stats(bucket.bucket_id, -1, -size)
    return keys


def list_page(
    session: Session, namespace_id: str, bucket_ident: str, req: ListRequest
) -> tuple[list[ObjectOut], str | None]:
    bucket = find_bucket(session, namespace_id, bucket_ident)
    repo = ObjectRepository(session, namespace_id, bucket.bucket_id)
    stmt = repo.scoped().where(build_filter(req.filters, filter_field))
    rows, nxt = paginate(session, stmt, _sort_key(req), limit=req.limit, cursor=req.cursor)
    return [to_out(r) for r in rows], nxt


def _sort_key(req: ListRequest) -> SortKey:
    field = req.sort.field if req.sort else "created_at"
    descending = req.sort.direction == "desc" if req.sort else True
    # ids are time-sortable, so creation order is the primary key's order (no extra index).
    columns = {
        "created_at": Object.object_id,
        "object_id": Object.object_id,
        "updated_at": Object.updated_at,
    }
    if field not in columns:
        raise ValidationFailed.at(
            ["sort", "field"], f"cannot sort by '{field}' (use {', '.join(columns)})"
        )
    return SortKey(columns[field], Object.object_id, descending)


def blob_for_download(
    session: Session, namespace_id: str, bucket_ident: str, object_id: str, blob_id: str
) -> Blob:
    bucket = find_bucket(session, namespace_id, bucket_ident)
    blob = ObjectRepository(session, namespace_id, bucket.bucket_id).blob(object_id, blob_id)
    if blob is None:
        raise NotFound(f"blob '{blob_id}' of object '{object_id}' not found")
    return blob


def to_out(obj: Object) -> ObjectOut:
    return ObjectOut.model_validate(obj)
