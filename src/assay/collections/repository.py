"""SQL for collections and their documents; every query is namespace-scoped."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, func, select

from assay.documents.vectors import unpack_vector
from assay.documents.writer import DocumentWriter
from assay.kit.repository import NamespacedRepository
from assay.models import Collection, Document, DocumentVector


class CollectionRepository(NamespacedRepository[Collection]):
    model = Collection
    namespace_column = Collection.namespace_id
    id_column = Collection.collection_id
    name_column = Collection.collection_name
    id_prefix = "col"

    def for_bucket(self, bucket_id: str) -> list[Collection]:
        """The collections a bucket's objects feed: defaults, and those naming the bucket."""
        rows = self.session.scalars(self.scoped().order_by(Collection.collection_id))
        return [c for c in rows if c.source_bucket_ids is None or bucket_id in c.source_bucket_ids]

    def delete(self, collection: Collection) -> None:
        """The collection and its documents (their vectors logged as removed). Its row is
        locked first: a batch chunk holding it FOR SHARE finishes writing before the documents
        go, and one that comes later finds it gone (see batches/tasks._drop_deleted_targets)."""
        self.session.execute(
            select(Collection.collection_id)
            .where(Collection.collection_id == collection.collection_id)
            .with_for_update()
        )
        DocumentWriter(self.session, self.namespace_id).remove_collection(collection.collection_id)
        super().delete(collection)

    def document_counts(self, collection_ids: list[str]) -> dict[str, int]:
        stmt = (
            select(Document.collection_id, func.count())
            .where(Document.namespace_id == self.namespace_id)
            .where(Document.collection_id.in_(collection_ids))
            .group_by(Document.collection_id)
        )
        return {cid: n for cid, n in self.session.execute(stmt)}

    def documents(self, collection_id: str | None = None) -> Select[Document]:
        stmt = select(Document).where(Document.namespace_id == self.namespace_id)
        return (
            stmt if collection_id is None else stmt.where(Document.collection_id == collection_id)
        )

    def document(self, collection_id: str, document_id: str) -> Document | None:
        stmt = self.documents(collection_id).where(Document.document_id == document_id)
        return self.session.scalar(stmt)

    def documents_of_object(self, object_id: str) -> list[Document]:
        stmt = self.documents().where(Document.object_id == object_id)
        return list(
            self.session.scalars(stmt.order_by(Document.collection_id, Document.document_id))
        )

    def vectors_of(self, document_ids: list[str]) -> dict[str, dict[str, list[float]]]:
        """The vectors of these documents by feature URI."""
        stmt = select(DocumentVector.document_id, DocumentVector.feature_uri, DocumentVector.vector)
        stmt = stmt.where(
            DocumentVector.namespace_id == self.namespace_id,
            DocumentVector.document_id.in_(document_ids),
        )
        found: dict[str, dict[str, list[float]]] = {}
        for document_id, uri, data in self.session.execute(stmt):
            found.setdefault(document_id, {})[uri] = unpack_vector(data).tolist()
        return found


def document_field(name: str) -> ColumnElement[Any] | None:
    """Columns a retriever filter or sort may name."""
    head, _, rest = name.partition(".")
    json_cols = {"metadata": Document.metadata_, "content": Document.content}
    if head in json_cols and rest:
        path = tuple(rest.split("."))
        return json_cols[head][path] if len(path) > 1 else json_cols[head][path[0]]
    if head == "segment" and rest:
        return Document.segment[rest]
    plain: dict[str, Any] = {
        "document_id": Document.document_id,
        "collection_id": Document.collection_id,
        "object_id": Document.object_id,
        "source.object_id": Document.object_id,
        "blob_id": Document.blob_id,
        "source.blob_id": Document.blob_id,
        "property": Document.property,
        "source.property": Document.property,
        "extractor": Document.extractor,
        "created_at": Document.created_at,
    }
    return plain.get(name)
