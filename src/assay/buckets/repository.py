"""SQL for buckets; every query starts from `scoped(namespace_id)`."""

from __future__ import annotations

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.orm import Session

from assay.documents.writer import DocumentWriter
from assay.kit.ids import has_prefix
from assay.models import Bucket


class BucketRepository:
    def __init__(self, session: Session, namespace_id: str) -> None:
        self.session = session
        self.namespace_id = namespace_id

    def scoped(self) -> Select[tuple[Bucket]]:
        return select(Bucket).where(Bucket.namespace_id == self.namespace_id)

    def get_by_ident(self, ident: str) -> Bucket | None:
        col = Bucket.bucket_id if has_prefix(ident, "bkt") else Bucket.bucket_name
        return self.session.scalar(self.scoped().where(col == ident))

    def name_taken(self, name: str) -> bool:
        return self.session.scalar(self.scoped().where(Bucket.bucket_name == name)) is not None

    def add(self, bucket: Bucket) -> Bucket:
        self.session.add(bucket)
        self.session.flush()
        return bucket

    def delete(self, bucket: Bucket) -> None:
        """The bucket with everything in it; its objects' documents go first, their vectors
        logged as removed (the database's cascade would not log them)."""
        DocumentWriter(self.session, self.namespace_id).remove_bucket(bucket.bucket_id)
        self.session.delete(bucket)

    def add_stats(self, bucket_id: str, objects: int, size_bytes: int) -> bool:
        """Keep object_count and total_size_bytes current; False if the bucket is gone."""
        params = {"b_id": bucket_id, "ns_id": self.namespace_id, "n": objects, "size": size_bytes}
        result = self.session.execute(_ADD_STATS, params)
        return bool(result.rowcount)  # type: ignore[attr-defined]


_columns = Bucket.__table__.c
# Built once: registration runs it for every group commit.
_ADD_STATS = (
    update(Bucket.__table__)
    .where(_columns.bucket_id == bindparam("b_id"), _columns.namespace_id == bindparam("ns_id"))
    .values(
        object_count=_columns.object_count + bindparam("n"),
        total_size_bytes=_columns.total_size_bytes + bindparam("size"),
    )
)
