"""SQL for uploads; every query is scoped to a namespace and bucket."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assay.kit.repository import BucketedRepository
from assay.models import Blob, Object, Upload


class UploadRepository(BucketedRepository[Upload]):
    model = Upload
    namespace_column = Upload.namespace_id
    bucket_column = Upload.bucket_id
    id_column = Upload.upload_id

    def status_counts(self) -> list[tuple[str, int, int]]:
        """(status, uploads, declared bytes) for the bucket's uploads."""
        stmt = (
            select(Upload.status, func.count(), func.coalesce(func.sum(Upload.file_size_bytes), 0))
            .where(*self.scope())
            .group_by(Upload.status)
        )
        return [(str(s), int(n), int(size or 0)) for s, n, size in self.session.execute(stmt)]

    def object_with_content(self, sha256: str, prop: str, blob_type: str) -> str | None:
        """An object of this bucket whose `prop` blob already holds these bytes as `blob_type`.

        Only the same property (and type) counts: those bytes passed its type check when that
        blob was registered, while bytes held under another type (text, say) prove nothing
        about whether they are an image.
        """
        stmt = (
            select(Object.object_id)
            .join(Blob, Blob.object_id == Object.object_id)
            .where(
                Object.namespace_id == self.namespace_id,
                Object.bucket_id == self.bucket_id,
                Blob.sha256 == sha256,
                Blob.property == prop,
                Blob.type == blob_type,
            )
            .limit(1)
        )
        return self.session.scalar(stmt)


def upload_by_id(session: Session, upload_id: str) -> Upload | None:
    """For the signed PUT route, whose token (not a key) names the upload."""
    return session.get(Upload, upload_id)
