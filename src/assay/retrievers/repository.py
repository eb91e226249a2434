"""SQL of retrievers and of searching documents; every query is namespace-scoped."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from assay.collections.repository import document_field
from assay.documents.vectors import unpack_vector
from assay.kit import bulk
from assay.kit.ids import has_prefix
from assay.kit.paging import build_filter
from assay.kit.repository import NamespacedRepository
from assay.kit.schemas import FilterGroup
from assay.models import Document, DocumentVector, Retriever
from assay.retrievers import fulltext

# What a hit's answer and the stages after a search read of its document, by attribute name.
_DOCS = Document.__table__.c
_HIT_COLUMNS = (
    _DOCS.doc_key,
    _DOCS.namespace_id,
    _DOCS.document_id,
    _DOCS.collection_id,
    _DOCS.object_id,
    _DOCS.blob_id,
    _DOCS.property,
    _DOCS.segment,
    _DOCS.content,
    _DOCS.metadata.label("metadata_"),
    _DOCS.created_at,
)
# Built once: building a select costs about as much as running it for ten keys. Table
# columns, not ORM attributes: a Core statement skips the ORM's compile and loading steps.
_HITS = select(*_HIT_COLUMNS).where(_DOCS.doc_key.in_(bindparam("keys", expanding=True)))
_KEY_CHUNK = 5_000  # doc keys per IN list (SQLite allows 32,766 variables)
_WORD = re.compile(r"\w+", re.UNICODE)


class RetrieverRepository(NamespacedRepository[Retriever]):
    model = Retriever
    namespace_column = Retriever.namespace_id
    id_column = Retriever.retriever_id
    name_column = Retriever.retriever_name
    id_prefix = "ret"

    def plan_row(self, ident: str) -> Any | None:
        """What executing a saved retriever needs of its row: (retriever_id, collection_ids,
        stages), by id or name. Three columns and no entity: this runs on every execute."""
        by = _PLAN_BY_ID if has_prefix(ident, self.id_prefix) else _PLAN_BY_NAME
        return bulk.first(self.session, by, {"ns": self.namespace_id, "ident": ident})


# Core statements of table columns (as `_HITS`): no ORM step on every execute.
_RETRIEVERS = Retriever.__table__.c
_PLAN = select(_RETRIEVERS.retriever_id, _RETRIEVERS.collection_ids, _RETRIEVERS.stages).where(
    _RETRIEVERS.namespace_id == bindparam("ns")
)
_PLAN_BY_ID = _PLAN.where(_RETRIEVERS.retriever_id == bindparam("ident"))
_PLAN_BY_NAME = _PLAN.where(_RETRIEVERS.retriever_name == bindparam("ident"))


class SearchRepository:
    """Documents of one namespace as search sees them: by key, by filter, by words."""

    def __init__(self, session: Session, namespace_id: str) -> None:
        self.session = session
        self.namespace_id = namespace_id

    def documents_by_key(self, keys: Sequence[int]) -> dict[int, Any]:
        """The hits' documents, as rows of the columns answers and stages read (no ORM
        entities: building them cost more than the index search on every execute)."""
        # The namespace is checked on the rows, not in SQL: given both, SQLite walks the
        # namespace's index (every document of it) instead of looking the keys up.
        found: dict[int, Any] = {}
        for chunk in _chunks(keys):
            rows = bulk.rows(self.session, _HITS, {"keys": chunk})
            found.update((r.doc_key, r) for r in rows if r.namespace_id == self.namespace_id)
        return found

    def filter_query(
        self, collection_ids: list[str], groups: Iterable[FilterGroup | dict[str, Any]]
    ) -> Select[Any]:
        """`SELECT doc_key` of the collections' documents that pass every filter group."""
        conditions = [
            build_filter(g if isinstance(g, FilterGroup) else FilterGroup.model_validate(g),
                         document_field)
            for g in groups
        ]  # fmt: skip
        return select(Document.doc_key).where(
            Document.namespace_id == self.namespace_id,
            Document.collection_id.in_(collection_ids),
            *conditions,
        )

    def text_search(
        self, collection_ids: list[str], query: str, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """BM25 over document text (higher is better), best first, at most `k`."""
        words = _WORD.findall(query)
        if not words or k <= 0:
            return []
        if self.session.get_bind().dialect.name == "sqlite":
            search = fulltext.sqlite_bm25
        else:
            search = fulltext.postgres_bm25
        return search(self.session, self.namespace_id, collection_ids, words[:64], k, allowed)

    def vectors(self, keys: Sequence[int], feature_uri: str) -> dict[int, np.ndarray]:
        """These documents' vectors under one feature."""
        found: dict[int, np.ndarray] = {}
        for chunk in _chunks(keys):
            stmt = select(
                DocumentVector.doc_key, DocumentVector.vector, DocumentVector.namespace_id
            ).where(DocumentVector.doc_key.in_(chunk), DocumentVector.feature_uri == feature_uri)
            found.update(
                (key, unpack_vector(data))
                for key, data, ns in self.session.execute(stmt)
                if ns == self.namespace_id
            )
        return found


def _chunks(keys: Sequence[int]) -> Iterable[list[int]]:
    items = [int(k) for k in keys]
    for start in range(0, len(items), _KEY_CHUNK):
        yield items[start : start + _KEY_CHUNK]
