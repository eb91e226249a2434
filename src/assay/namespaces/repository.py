"""SQL for namespaces; built with the set of namespace ids the key may see."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from assay.documents.writer import DocumentWriter
from assay.kit.repository import Repository
from assay.models import Bucket, Collection, Document, Namespace, Object


class NamespaceRepository(Repository[Namespace]):
    """Namespaces a key may see: `allowed` ids, or every namespace when None."""

    model = Namespace
    id_column = Namespace.namespace_id
    name_column = Namespace.namespace_name
    id_prefix = "ns"

    def __init__(self, session: Session, allowed: frozenset[str] | None = None) -> None:
        super().__init__(session)
        self.allowed = allowed

    def scope(self) -> list[ColumnElement[bool]]:
        return [] if self.allowed is None else [Namespace.namespace_id.in_(self.allowed)]

    def collection_ids(self, namespace_id: str) -> list[str]:
        stmt = select(Collection.collection_id).where(Collection.namespace_id == namespace_id)
        return list(self.session.scalars(stmt))

    def delete(self, namespace: Namespace) -> None:
        """The namespace with everything in it; its documents go first, their vectors logged
        as removed (the database's cascade would not log them)."""
        DocumentWriter(self.session, namespace.namespace_id).remove_namespace()
        super().delete(namespace)

    def counts(self, namespace_ids: list[str]) -> dict[str, dict[str, Any]]:
        """bucket_count and object_count per namespace, two grouped queries for the whole page."""
        out: dict[str, dict[str, Any]] = {
            i: {"bucket_count": 0, "object_count": 0, "collection_count": 0, "document_count": 0}
            for i in namespace_ids
        }
        if not namespace_ids:
            return out
        counted = (
            (Bucket, "bucket_count"),
            (Object, "object_count"),
            (Collection, "collection_count"),
            (Document, "document_count"),
        )
        for model, field in counted:
            stmt = (
                select(model.namespace_id, func.count())
                .where(model.namespace_id.in_(namespace_ids))
                .group_by(model.namespace_id)
            )
            for ns_id, n in self.session.execute(stmt):
                out[ns_id][field] = n
        return out
