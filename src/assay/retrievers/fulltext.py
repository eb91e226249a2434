"""BM25 over `documents.search_text`: FTS5 on SQLite, a `tsvector` GIN index on PostgreSQL.

Both read the same text (each document's chunk text, OCR text, transcript and labels) and
both match any of the query's words, stemmed. SQLite ranks with FTS5's own `bm25()`.
PostgreSQL has no BM25, so it is computed here over the GIN index's matches: per-word
document frequencies and term counts (`ts_rank_cd` of a one-word query counts its
occurrences), Okapi's saturation and length normalisation with the usual k1 = 1.2, b = 0.75.
Scores are higher-is-better on both, but not comparable between them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

_K1, _B = 1.2, 0.75
# ts_rank_cd weighs an unlabelled lexeme 0.1 per occurrence (weight D)
_WEIGHT_D = 0.1


def sqlite_bm25(
    session: Session,
    namespace_id: str,
    collection_ids: list[str],
    words: list[str],
    k: int,
    allowed: np.ndarray | None,
) -> list[tuple[int, float]]:
    match = " OR ".join('"' + w.replace('"', "") + '"' for w in words)
    ids = ", ".join(f":c{i}" for i in range(len(collection_ids)))
    sql = (
        "SELECT d.doc_key, bm25(document_text) AS s FROM document_text "
        "JOIN documents d ON d.doc_key = document_text.rowid "
        f"WHERE document_text MATCH :q AND d.namespace_id = :ns AND d.collection_id IN ({ids}) "
        "ORDER BY s, d.doc_key"  # ties in a stable order
    )
    params: dict[str, Any] = {"q": match, "ns": namespace_id}
    params.update({f"c{i}": c for i, c in enumerate(collection_ids)})
    if allowed is None:
        rows = session.execute(text(sql + " LIMIT :k"), {**params, "k": k})
        return [(int(key), -float(s)) for key, s in rows]
    permitted = set(allowed.tolist())
    found: list[tuple[int, float]] = []
    for key, s in session.execute(text(sql), params):
        if int(key) in permitted:
            found.append((int(key), -float(s)))
            if len(found) == k:
                break
    return found


def postgres_bm25(
    session: Session,
    namespace_id: str,
    collection_ids: list[str],
    words: list[str],
    k: int,
    allowed: np.ndarray | None,
) -> list[tuple[int, float]]:
    terms = list(dict.fromkeys(w.lower() for w in words))
    params: dict[str, Any] = {"ns": namespace_id, "cols": collection_ids, "k": k}
    params.update({f"w{i}": w for i, w in enumerate(terms)})
    each = [f"plainto_tsquery('english', :w{i})" for i in range(len(terms))]
    scoped = "namespace_id = :ns AND collection_id = ANY(:cols)"
    if allowed is not None:
        scoped += " AND doc_key = ANY(:allowed)"
        params["allowed"] = [int(x) for x in allowed.tolist()]
    # Per word: idf from its document frequency among the matches, tf from ts_rank_cd.
    frequencies = ", ".join(
        f"count(*) FILTER (WHERE sv @@ q{i}) AS df{i}" for i in range(len(terms))
    )
    score = " + ".join(
        f"ln(1 + (n.total - s.df{i} + 0.5) / (s.df{i} + 0.5)) * "
        f"(ts_rank_cd(m.sv, q{i}, 0) / {_WEIGHT_D}) * {_K1 + 1} / "
        f"((ts_rank_cd(m.sv, q{i}, 0) / {_WEIGHT_D}) "
        f"+ {_K1} * (1 - {_B} + {_B} * m.len / greatest(s.avg_len, 1)))"
        for i in range(len(terms))
    )
    queries = ", ".join(f"{q} AS q{i}" for i, q in enumerate(each))
    sql = f"""
        WITH q AS (SELECT {queries}, ({" || ".join(each)}) AS anyq),
        m AS (
            SELECT d.doc_key, d.search_vector AS sv, length(d.search_vector) AS len
            FROM documents d, q
            WHERE d.search_vector @@ q.anyq AND {scoped}
        ),
        s AS (SELECT {frequencies}, avg(m.len) AS avg_len FROM m, q),
        n AS (SELECT count(*) AS total FROM documents WHERE {scoped})
        SELECT m.doc_key, {score} AS score FROM m, q, s, n
        ORDER BY score DESC, m.doc_key LIMIT :k
    """
    return [(int(key), float(s)) for key, s in session.execute(text(sql), params)]
