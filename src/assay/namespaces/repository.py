"""SQL for namespaces; callers pass the set of namespace ids the key may see."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from assay.documents.writer import DocumentWriter
from assay.kit.ids import has_prefix
from assay.models import Bucket, Collection, Document, Namespace, Object


class NamespaceRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def visible(self, allowed: frozenset[str] | None) -> Select[tuple[Namespace]]:
        """Namespaces a key may see; every query starts here."""
        stmt = select(Namespace)
        return stmt if allowed is None else stmt.where(Namespace.namespace_id.in_(allowed))

    def get_by_ident(self, ident: str, allowed: frozenset[str] | None = None) -> Namespace | None:
        col = Namespace.namespace_id if has_prefix(ident, "ns") else Namespace.namespace_name
        return self.session.scalar(self.visible(allowed).where(col == ident))

    def name_taken(self, name: str) -> bool:
        stmt = select(Namespace.namespace_id).where(Namespace.namespace_name == name)
        return self.session.scalar(stmt) is not None

    def add(self, namespace: Namespace) -> Namespace:
        self.session.add(namespace)
        self.session.flush()
        return namespace

    def collection_ids(self, namespace_id: str) -> list[str]:
        stmt = select(Collection.collection_id).where(Collection.namespace_id == namespace_id)
        return list(self.session.scalars(stmt))

    def delete(self, namespace: Namespace) -> None:
        """The namespace with everything in it; its documents go first, their vectors logged
        as removed (the database's cascade would not log them)."""
        DocumentWriter(self.session, namespace.namespace_id).remove_namespace()
        self.session.delete(namespace)

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
