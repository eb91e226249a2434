"""SQL for objects and blobs; every query starts from `scoped()` (namespace + bucket)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from assay.documents.writer import DocumentWriter
from assay.kit.bulk import insert_rows
from assay.kit.db import table_of
from assay.kit.repository import BucketedRepository
from assay.models import Blob, BlobBytes, Object


class ObjectRepository(BucketedRepository[Object]):
    model = Object
    namespace_column = Object.namespace_id
    bucket_column = Object.bucket_id
    id_column = Object.object_id

    def drop_unreferenced_small_bytes(self, storage_keys: set[str]) -> None:
        """Delete database-held bytes that no blob of the namespace references any more."""
        gone = unreferenced_keys(self.session, self.namespace_id, storage_keys)
        if gone:
            self.session.execute(
                delete(BlobBytes).where(
                    BlobBytes.namespace_id == self.namespace_id, BlobBytes.storage_key.in_(gone)
                )
            )

    def delete(self, obj: Object) -> None:
        """The object, its blobs and its documents (their vectors logged as removed)."""
        DocumentWriter(self.session, self.namespace_id).remove_objects([obj.object_id])
        super().delete(obj)

    def blob(self, object_id: str, blob_id: str) -> Blob | None:
        stmt = (
            select(Blob)
            .join(Object, Object.object_id == Blob.object_id)
            .where(
                *self.scope(),
                Blob.object_id == object_id,
                Blob.blob_id == blob_id,
            )
        )
        return self.session.scalar(stmt)


def insert_object_rows(
    session: Session,
    objects: list[dict[str, Any]],
    blobs: list[dict[str, Any]],
    small_bytes: list[dict[str, Any]],
) -> None:
    """Plain multi-row INSERTs (column names as keys): the hot path of registration.

    Rows carry their namespace and bucket ids, set by the caller from scoped lookups.
    """
    insert_rows(session, _OBJECTS, objects)
    insert_rows(session, _BLOBS, blobs)
    insert_rows(session, _BLOB_BYTES, small_bytes, skip_duplicates=True)


_OBJECTS = table_of(Object)
_BLOBS = table_of(Blob)
_BLOB_BYTES = table_of(BlobBytes)


def small_bytes(session: Session, namespace_id: str, storage_key: str) -> bytes | None:
    """The bytes of a small blob kept in the database."""
    stmt = select(BlobBytes.data).where(
        BlobBytes.namespace_id == namespace_id, BlobBytes.storage_key == storage_key
    )
    return session.scalar(stmt)


def unreferenced_keys(session: Session, namespace_id: str, storage_keys: set[str]) -> set[str]:
    """Which of these storage keys no blob of the namespace points at any more."""
    if not storage_keys:
        return set()
    stmt = select(Blob.storage_key).where(
        Blob.namespace_id == namespace_id, Blob.storage_key.in_(storage_keys)
    )
    return storage_keys - set(session.scalars(stmt))


def filter_field(name: str) -> ColumnElement[Any] | None:
    """Columns a filter may name: `metadata.x.y`, `properties.x`, and plain columns."""
    head, _, rest = name.partition(".")
    if head in ("metadata", "properties") and rest:
        col = Object.metadata_ if head == "metadata" else Object.properties
        path = tuple(rest.split("."))
        return col[path] if len(path) > 1 else col[path[0]]
    plain: dict[str, Any] = {
        "object_id": Object.object_id,
        "key_prefix": Object.key_prefix,
        "status": Object.status,
        "created_at": Object.created_at,
        "updated_at": Object.updated_at,
    }
    return plain.get(name)
