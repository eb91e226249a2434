"""SQL of retrievers and of searching documents; every query is namespace-scoped."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from assay.collections.repository import document_field
from assay.documents.vectors import unpack_vector
from assay.kit.paging import build_filter
from assay.kit.repository import NamespacedRepository
from assay.kit.schemas import FilterGroup
from assay.models import Document, DocumentVector, Retriever
from assay.retrievers import fulltext

_KEY_CHUNK = 5_000  # doc keys per IN list (SQLite allows 32,766 variables)
_WORD = re.compile(r"\w+", re.UNICODE)


class RetrieverRepository(NamespacedRepository[Retriever]):
    model = Retriever
    namespace_column = Retriever.namespace_id
    id_column = Retriever.retriever_id
    name_column = Retriever.retriever_name
    id_prefix = "ret"


class SearchRepository:
    """Documents of one namespace as search sees them: by key, by filter, by words."""

    def __init__(self, session: Session, namespace_id: str) -> None:
        self.session = session
        self.namespace_id = namespace_id

    def documents_by_key(self, keys: Sequence[int]) -> dict[int, Document]:
        # The namespace is checked on the rows, not in SQL: given both, SQLite walks the
        # namespace's index (every document of it) instead of looking the keys up.
        found: dict[int, Document] = {}
        for chunk in _chunks(keys):
            stmt = select(Document).where(Document.doc_key.in_(chunk))
            found.update(
                (d.doc_key, d)
                for d in self.session.scalars(stmt)
                if d.namespace_id == self.namespace_id
            )
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
