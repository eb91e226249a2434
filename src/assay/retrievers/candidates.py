"""The doc keys a vector search may return, kept as SQL for as long as that pays.

A filter over a million documents can pass a hundred thousand of them. The file index needs
those keys in memory (it filters the graph walk by them), but PostgreSQL does not: pgvector
probes the filter per candidate the HNSW scan yields, through the documents' key index, so
the keys never travel. `Candidates` holds either fixed keys (a prior stage's hits, or those
intersected with a filter) or the filter's query, materialised only when asked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import Select
from sqlalchemy.orm import Session


class Candidates:
    """Doc keys a search may return: fixed keys, or a filter as a `SELECT doc_key` query."""

    def __init__(
        self,
        session: Session | None = None,
        *,
        query: Select[Any] | None = None,
        keys: np.ndarray | None = None,
    ) -> None:
        if (query is None) == (keys is None):
            raise ValueError("Candidates takes a query or keys")
        self._session = session
        self._query = query
        self._keys = None if keys is None else np.unique(np.asarray(keys, dtype=np.uint64))

    @classmethod
    def of(cls, keys: np.ndarray) -> Candidates:
        return cls(keys=keys)

    @property
    def query(self) -> Select[Any] | None:
        """The filter as SQL, or None when the candidates are fixed keys."""
        return self._query if self._keys is None else None

    def keys(self) -> np.ndarray:
        """Every candidate key, sorted and unique (read once)."""
        if self._keys is None:
            assert self._session is not None and self._query is not None
            found = self._session.scalars(self._query).all()
            self._keys = np.unique(np.asarray(found, dtype=np.uint64))
        return self._keys

    def keys_up_to(self, limit: int) -> np.ndarray | None:
        """The keys when there are at most `limit` of them, else None; a query reads at most
        `limit + 1` rows to tell."""
        if self._keys is not None:
            return self._keys if len(self._keys) <= limit else None
        assert self._session is not None and self._query is not None
        found = self._session.scalars(self._query.limit(limit + 1)).all()
        if len(found) > limit:
            return None
        self._keys = np.unique(np.asarray(found, dtype=np.uint64))
        return self._keys
