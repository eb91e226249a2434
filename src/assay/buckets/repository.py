"""SQL for buckets; every query starts from `scoped(namespace_id)`."""

from __future__ import annotations

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

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
        self.session.delete(bucket)

    def add_stats(self, bucket_id: str, objects: int, size_bytes: int) -> bool:
        """Keep object_count and total_size_bytes current; False if the bucket is gone."""
        table = Bucket.__table__.c
        result = self.session.execute(
            update(Bucket.__table__)
            .where(table.bucket_id == bucket_id, table.namespace_id == self.namespace_id)
            .values(
                object_count=table.object_count + objects,
                total_size_bytes=table.total_size_bytes + size_bytes,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
