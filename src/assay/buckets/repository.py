"""SQL for buckets; every query starts from `scoped(namespace_id)`."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, update

from assay.documents.writer import DocumentWriter
from assay.kit import bulk
from assay.kit.db import table_of
from assay.kit.repository import NamespacedRepository
from assay.models import Bucket


class BucketRepository(NamespacedRepository[Bucket]):
    model = Bucket
    namespace_column = Bucket.namespace_id
    id_column = Bucket.bucket_id
    name_column = Bucket.bucket_name
    id_prefix = "bkt"

    def delete(self, bucket: Bucket) -> None:
        """The bucket with everything in it; its objects' documents go first, their vectors
        logged as removed (the database's cascade would not log them)."""
        DocumentWriter(self.session, self.namespace_id).remove_bucket(bucket.bucket_id)
        super().delete(bucket)

    def totals(self) -> tuple[int, int]:
        """Objects and blob bytes over all the namespace's buckets."""
        stmt = select(
            func.coalesce(func.sum(Bucket.object_count), 0),
            func.coalesce(func.sum(Bucket.total_size_bytes), 0),
        ).where(Bucket.namespace_id == self.namespace_id)
        objects, size = self.session.execute(stmt).one()
        return int(objects), int(size)

    def add_stats(self, bucket_id: str, objects: int, size_bytes: int) -> bool:
        """Keep object_count and total_size_bytes current; False if the bucket is gone."""
        params = {"b_id": bucket_id, "ns_id": self.namespace_id, "n": objects, "size": size_bytes}
        return bool(bulk.execute(self.session, _ADD_STATS, params))


_table = table_of(Bucket)
_columns = _table.c
# Built once: registration runs it for every group commit.
_ADD_STATS = (
    update(_table)
    .where(_columns.bucket_id == bindparam("b_id"), _columns.namespace_id == bindparam("ns_id"))
    .values(
        object_count=_columns.object_count + bindparam("n"),
        total_size_bytes=_columns.total_size_bytes + bindparam("size"),
    )
)
