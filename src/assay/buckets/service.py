"""Bucket use-cases: schema-validated containers inside a namespace."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from assay.buckets.repository import BucketRepository
from assay.buckets.schemas import BucketCreate, BucketOut, BucketPatch
from assay.errors import AlreadyExists, NotFound, ValidationFailed
from assay.kit.ids import has_prefix, new_id
from assay.kit.paging import SortKey, count_all, paginate
from assay.models import Blob, Bucket, Object
from assay.objects.repository import ObjectRepository


def get_bucket(session: Session, namespace_id: str, ident: str) -> Bucket:
    bucket = BucketRepository(session, namespace_id).get_by_ident(ident)
    if bucket is None:
        raise NotFound(f"bucket '{ident}' not found")
    return bucket


def create(session: Session, namespace_id: str, body: BucketCreate) -> BucketOut:
    if has_prefix(body.bucket_name, "bkt"):
        raise ValidationFailed.at(["bucket_name"], "a name may not look like a bucket id")
    repo = BucketRepository(session, namespace_id)
    if repo.name_taken(body.bucket_name):
        raise AlreadyExists(f"bucket '{body.bucket_name}' already exists in this namespace")
    bucket = repo.add(
        Bucket(
            bucket_id=new_id("bkt"),
            namespace_id=namespace_id,
            bucket_name=body.bucket_name,
            description=body.description,
            bucket_schema=body.bucket_schema.model_dump(exclude_none=True),
            metadata_=body.metadata,
        )
    )
    return to_out(bucket, body.warnings())


def patch(session: Session, namespace_id: str, ident: str, body: BucketPatch) -> BucketOut:
    bucket = get_bucket(session, namespace_id, ident)
    fields = body.model_fields_set
    if body.bucket_name is not None and body.bucket_name != bucket.bucket_name:
        if BucketRepository(session, namespace_id).name_taken(body.bucket_name):
            raise AlreadyExists(f"bucket '{body.bucket_name}' already exists in this namespace")
        bucket.bucket_name = body.bucket_name
    if "description" in fields:
        bucket.description = body.description
    if body.metadata is not None:
        bucket.metadata_ = body.metadata
    session.flush()
    return to_out(bucket)


def delete(session: Session, namespace_id: str, ident: str) -> tuple[str, set[str]]:
    """Delete a bucket with its objects; returns its id and the storage keys its blobs used."""
    bucket = get_bucket(session, namespace_id, ident)
    keys = set(
        session.scalars(
            select(Blob.storage_key)
            .join(Object, Object.object_id == Blob.object_id)
            .where(Object.bucket_id == bucket.bucket_id, Object.namespace_id == namespace_id)
        )
    )
    BucketRepository(session, namespace_id).delete(bucket)
    session.flush()
    ObjectRepository(session, namespace_id, bucket.bucket_id).drop_unreferenced_small_bytes(keys)
    return bucket.bucket_id, keys


def list_page(
    session: Session, namespace_id: str, *, limit: int, cursor: str | None
) -> tuple[list[BucketOut], str | None, int]:
    repo = BucketRepository(session, namespace_id)
    rows, nxt = paginate(
        session,
        repo.scoped(),
        SortKey(Bucket.bucket_id, Bucket.bucket_id),
        limit=limit,
        cursor=cursor,
    )
    return [to_out(b) for b in rows], nxt, count_all(session, repo.scoped())


def to_out(bucket: Bucket, warnings: list[str] | None = None) -> BucketOut:
    out = BucketOut.model_validate(bucket)
    out.warnings = warnings or []
    return out
