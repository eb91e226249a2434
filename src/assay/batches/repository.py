"""SQL for batches and their items; every query is scoped to a namespace and bucket."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import case, exists, func, insert, select, update

from assay.kit.db import utcnow
from assay.kit.repository import BucketedRepository
from assay.models import Batch, BatchItem, Blob, Object

TEXT_TYPES = ("text", "json")


class Sized(NamedTuple):
    """A batch item as jobs are cut: its blobs' bytes, and whether they are all text."""

    object_id: str
    size: int
    text_only: bool = False


class BatchRepository(BucketedRepository[Batch]):
    model = Batch
    namespace_column = Batch.namespace_id
    bucket_column = Batch.bucket_id
    id_column = Batch.batch_id

    def get_locked(self, batch_id: str) -> Batch | None:
        """The batch, its row locked until the transaction ends (`FOR UPDATE`; SQLite's writer
        holds the whole database already). Jobs of one batch change its status and counts
        together: without the lock, on PostgreSQL two of them could both start it or neither
        finish it."""
        stmt = self.scoped().where(Batch.batch_id == batch_id).with_for_update()
        return self.session.scalar(stmt)

    def missing_objects(self, object_ids: list[str]) -> list[str]:
        """The ids among these that are not objects of this bucket."""
        found: set[str] = set()
        for i in range(0, len(object_ids), 500):
            chunk = object_ids[i : i + 500]
            found |= set(
                self.session.scalars(
                    select(Object.object_id).where(
                        Object.namespace_id == self.namespace_id,
                        Object.bucket_id == self.bucket_id,
                        Object.object_id.in_(chunk),
                    )
                )
            )
        return [i for i in object_ids if i not in found]

    def add_items(self, batch_id: str, object_ids: list[str]) -> None:
        existing = set(self.object_ids(batch_id))
        rows = [
            {"batch_id": batch_id, "object_id": o, "status": "PENDING", "attempts": 0}
            for o in dict.fromkeys(object_ids)
            if o not in existing
        ]
        if rows:
            now = utcnow()
            self.session.execute(insert(BatchItem), [{**r, "updated_at": now} for r in rows])

    def object_ids(self, batch_id: str, status: str | None = None) -> list[str]:
        stmt = select(BatchItem.object_id).where(BatchItem.batch_id == batch_id)
        if status is not None:
            stmt = stmt.where(BatchItem.status == status)
        return list(self.session.scalars(stmt.order_by(BatchItem.object_id)))

    def object_sizes(self, batch_id: str, status: str | None = None) -> list[Sized]:
        """A batch's items with the bytes of their blobs, in object id order."""
        size = func.coalesce(func.sum(Blob.size_bytes), 0)
        others = func.coalesce(func.sum(case((Blob.type.in_(TEXT_TYPES), 0), else_=1)), 0)
        stmt = (
            select(BatchItem.object_id, size, others)
            .outerjoin(Blob, Blob.object_id == BatchItem.object_id)
            .where(BatchItem.batch_id == batch_id)
            .group_by(BatchItem.object_id)
        )
        if status is not None:
            stmt = stmt.where(BatchItem.status == status)
        rows = self.session.execute(stmt.order_by(BatchItem.object_id))
        return [Sized(o, int(n), int(other) == 0) for o, n, other in rows]

    def counts(self, batch_id: str) -> dict[str, int]:
        stmt = (
            select(BatchItem.status, func.count())
            .where(BatchItem.batch_id == batch_id)
            .group_by(BatchItem.status)
        )
        return {status: n for status, n in self.session.execute(stmt)}

    def has_items(self, batch_id: str, *statuses: str) -> bool:
        """Whether any item of the batch is in one of `statuses` (one index probe, where
        `counts` reads every item: a job of a large batch asks this after each chunk)."""
        stmt = select(
            exists().where(BatchItem.batch_id == batch_id, BatchItem.status.in_(statuses))
        )
        return bool(self.session.scalar(stmt))

    def error_summary(self, batch_id: str) -> dict[str, int]:
        stmt = (
            select(BatchItem.error_type, func.count())
            .where(BatchItem.batch_id == batch_id, BatchItem.status == "FAILED")
            .group_by(BatchItem.error_type)
        )
        return {str(kind): n for kind, n in self.session.execute(stmt)}

    def failures(self, batch_id: str) -> list[BatchItem]:
        stmt = select(BatchItem).where(BatchItem.batch_id == batch_id, BatchItem.status == "FAILED")
        return list(self.session.scalars(stmt.order_by(BatchItem.object_id)))

    def set_items(self, batch_id: str, object_ids: list[str], **values: Any) -> None:
        self.session.execute(
            update(BatchItem)
            .where(BatchItem.batch_id == batch_id, BatchItem.object_id.in_(object_ids))
            .values(updated_at=utcnow(), **values)
        )
