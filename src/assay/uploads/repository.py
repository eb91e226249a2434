"""SQL for uploads; every query is scoped to a namespace and bucket."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from assay.models import Blob, Object, Upload


class UploadRepository:
    def __init__(self, session: Session, namespace_id: str, bucket_id: str) -> None:
        self.session = session
        self.namespace_id = namespace_id
        self.bucket_id = bucket_id

    def scoped(self) -> Select[tuple[Upload]]:
        return select(Upload).where(
            Upload.namespace_id == self.namespace_id, Upload.bucket_id == self.bucket_id
        )

    def get(self, upload_id: str) -> Upload | None:
        return self.session.scalar(self.scoped().where(Upload.upload_id == upload_id))

    def status_counts(self) -> list[tuple[str, int, int]]:
        """(status, uploads, declared bytes) for the bucket's uploads."""
        stmt = (
            select(Upload.status, func.count(), func.coalesce(func.sum(Upload.file_size_bytes), 0))
            .where(Upload.namespace_id == self.namespace_id, Upload.bucket_id == self.bucket_id)
            .group_by(Upload.status)
        )
        return [(str(s), int(n), int(size)) for s, n, size in self.session.execute(stmt)]

    def add(self, upload: Upload) -> Upload:
        self.session.add(upload)
        self.session.flush()
        return upload

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
