"""Vector search inside PostgreSQL with pgvector: the `FeatureIndex` of scale-out deployments.

`document_vectors.vector` is pgvector's `vector`; each collection feature gets a partial HNSW
index over a `halfvec(d)` cast of it (half the size of float32, the same recall at these
dimensions), made on its first search. Nothing lives outside the database, so every API
process sees what any worker wrote the moment it commits.

Recall: pgvector's default graph (m 16, ef_construction 64) finds 0.75 of the true top 10 at
1M vectors of 384 dimensions even at ef_search 100; built with ef_construction 128 (what
usearch uses in the file index) it reaches 0.96 at ef_search 100 and 0.995 at 200
(bench/RESULTS.md), for a build 40 % longer.

Filtered searches keep their recall two ways: a selective candidate set (up to
`exact_limit` keys) is ranked exactly over its own float32 vectors; a larger one goes
through the HNSW index with pgvector's iterative scans, which keep walking the graph until
`k` rows pass the filter, with a wider beam. The filter goes into that query as a subquery
(`doc_key IN (SELECT doc_key FROM documents WHERE ...)`), probed per candidate through the
documents' key index, so its keys never leave the database.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Engine,
    String,
    any_,
    bindparam,
    cast,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from assay.backends.vector.base import VectorIndexError
from assay.kit.db import table_of
from assay.models import DocumentVector
from assay.retrievers.inline import RunInThread

if TYPE_CHECKING:
    from assay.retrievers.candidates import Candidates

_VECTORS = table_of(DocumentVector)
_MAX_EF_SEARCH = 1000  # pgvector's ceiling
_EF_CONSTRUCTION = 128


def _literal(value: str) -> str:
    # The partial index's predicate must appear as constants for the planner to use it.
    return "'" + value.replace("'", "''") + "'"


def _vector_text(query: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in np.asarray(query, dtype=np.float32)) + "]"


class PgVectorIndexes:
    """Vector search per (collection, feature URI) with pgvector; no state outside PostgreSQL."""

    EXACT_LIMIT = 2_000  # exact over a heap row per key costs ~3 ms per 1,000 keys
    EF_SEARCH = 200
    FILTERED_BEAM = 2  # filtered searches widen ef_search this many times

    def __init__(
        self, engine: Engine, *, exact_limit: int = EXACT_LIMIT, ef_search: int = EF_SEARCH
    ) -> None:
        self.engine = engine
        self.exact_limit = exact_limit
        self.ef_search = ef_search
        self._dims: dict[tuple[str, str], int] = {}  # those whose HNSW index exists
        self._lock = threading.Lock()

    @staticmethod
    def index_name(collection_id: str, feature_uri: str) -> str:
        digest = hashlib.sha256(feature_uri.encode()).hexdigest()[:12]
        return f"ix_vec_{collection_id}_{digest}"[:63]

    def search(
        self,
        session: Session,
        collection_id: str,
        feature_uri: str,
        query: np.ndarray,
        k: int,
        allowed: Candidates | None = None,
        *,
        inline: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Doc keys and cosine similarities of the `k` nearest vectors, best first."""
        if inline:  # every search is a query to the database server: never on the loop
            raise RunInThread
        dims = self._dimensions(session, collection_id, feature_uri)
        if dims is None or k <= 0:
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        if query.shape[-1] != dims:
            raise VectorIndexError(
                f"{feature_uri} holds {dims}-d vectors; the query has {query.shape[-1]}"
            )
        few = None if allowed is None else allowed.keys_up_to(self.exact_limit)
        if few is not None:
            rows = self._exact(session, collection_id, feature_uri, query, k, few)
        else:
            rows = self._approximate(session, collection_id, feature_uri, dims, query, k, allowed)
        rows.sort(key=lambda r: (r[1], r[0]))  # relaxed order comes back nearly sorted
        keys = np.fromiter((r[0] for r in rows), np.uint64, len(rows))
        sims = np.fromiter((1.0 - float(r[1]) for r in rows), np.float32, len(rows))
        return keys, sims

    def _exact(
        self, session: Session, collection_id: str, feature_uri: str, query: np.ndarray,
        k: int, keys: np.ndarray,
    ) -> list[Any]:  # fmt: skip
        """The candidates ranked over their own float32 vectors."""
        if len(keys) == 0:
            return []
        sql = text(
            "SELECT doc_key, vector <=> CAST(:q AS vector) AS d FROM document_vectors "
            "WHERE collection_id = :c AND feature_uri = :u AND doc_key = ANY(:keys) "
            "ORDER BY d, doc_key LIMIT :k"
        )
        params = {
            "q": _vector_text(query), "k": int(k), "c": collection_id, "u": feature_uri,
            "keys": [int(x) for x in keys.tolist()],
        }  # fmt: skip
        return list(session.execute(sql, params).all())

    def _approximate(
        self, session: Session, collection_id: str, feature_uri: str, dims: int,
        query: np.ndarray, k: int, allowed: Candidates | None,
    ) -> list[Any]:  # fmt: skip
        """The HNSW index's walk, with iterative scans past candidates the filter drops."""
        self._ensure_index(collection_id, feature_uri, dims)
        beam = self.ef_search if allowed is None else self.ef_search * self.FILTERED_BEAM
        ef = min(_MAX_EF_SEARCH, max(beam, 2 * int(k)))
        session.execute(
            text(
                "SELECT set_config('hnsw.ef_search', :ef, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
            ),
            {"ef": str(ef)},
        )
        from pgvector.sqlalchemy import HALFVEC

        probe = cast(bindparam("q", _vector_text(query), type_=String), HALFVEC(dims))
        distance = literal_column(f"(vector::halfvec({dims}))").op("<=>")(probe)
        stmt = (
            select(_VECTORS.c.doc_key, distance.label("d"))
            .select_from(_VECTORS)
            .where(
                text(
                    f"collection_id = {_literal(collection_id)} "
                    f"AND feature_uri = {_literal(feature_uri)}"
                )
            )
            .order_by(literal_column("d"))
            .limit(bindparam("k", int(k)))
        )
        if allowed is not None:
            if allowed.query is not None:
                stmt = stmt.where(_VECTORS.c.doc_key.in_(allowed.query.scalar_subquery()))
            else:
                keys = [int(x) for x in allowed.keys().tolist()]
                array = bindparam("keys", keys, type_=ARRAY(BigInteger))
                stmt = stmt.where(_VECTORS.c.doc_key == any_(array))
        return list(session.execute(stmt).all())

    def size(self, session: Session, collection_id: str, feature_uri: str) -> int:
        return len(self.keys(session, collection_id, feature_uri))

    def keys(self, session: Session, collection_id: str, feature_uri: str) -> np.ndarray:
        rows = session.execute(
            text(
                "SELECT doc_key FROM document_vectors "
                "WHERE collection_id = :c AND feature_uri = :u ORDER BY doc_key"
            ),
            {"c": collection_id, "u": feature_uri},
        ).scalars()
        return np.fromiter((int(r) for r in rows), np.uint64)

    def check(self) -> None:
        """Raise unless pgvector is installed in the database (readiness)."""
        with self.engine.connect() as conn:
            found = conn.scalar(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'"))
        if not found:
            raise VectorIndexError("the pgvector extension is not installed in the database")

    def drop(self, collection_ids: list[str]) -> None:
        """Drop the HNSW indexes of deleted collections (their rows went with them)."""
        gone = set(collection_ids)
        with self._lock:
            for key in [k for k in self._dims if k[0] in gone]:
                self._dims.pop(key)
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for collection_id in gone:
                names = conn.scalars(
                    text(
                        "SELECT indexname FROM pg_indexes WHERE tablename = 'document_vectors' "
                        "AND starts_with(indexname, :p)"
                    ),
                    {"p": f"ix_vec_{collection_id}_"},
                ).all()
                for name in names:
                    conn.execute(text(f'DROP INDEX IF EXISTS "{name}"'))

    def save_all(self) -> None:
        """Nothing to save: the database holds everything."""

    def open_sizes(self) -> dict[tuple[str, str], int]:
        """Nothing held open here (counting rows per scrape would read the whole table)."""
        return {}

    def _dimensions(self, session: Session, collection_id: str, feature_uri: str) -> int | None:
        known = self._dims.get((collection_id, feature_uri))
        if known is not None:
            return known
        dims = session.scalar(
            text(
                "SELECT vector_dims(vector) FROM document_vectors "
                "WHERE collection_id = :c AND feature_uri = :u LIMIT 1"
            ),
            {"c": collection_id, "u": feature_uri},
        )
        return None if dims is None else int(dims)

    def _ensure_index(self, collection_id: str, feature_uri: str, dims: int) -> None:
        """Make the collection feature's HNSW index once (in its own committed statement)."""
        key = (collection_id, feature_uri)
        if key in self._dims:
            return
        with self._lock:
            if key in self._dims:
                return
            name = self.index_name(collection_id, feature_uri)
            ddl = (
                f'CREATE INDEX IF NOT EXISTS "{name}" ON document_vectors USING hnsw '
                f"((vector::halfvec({dims})) halfvec_cosine_ops) "
                f"WITH (m = 16, ef_construction = {_EF_CONSTRUCTION}) "
                f"WHERE collection_id = {_literal(collection_id)} "
                f"AND feature_uri = {_literal(feature_uri)}"
            )
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(ddl))
            self._dims[key] = dims
