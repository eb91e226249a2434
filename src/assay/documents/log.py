"""The vector change log: a `+` row for every vector written and a `-` row for every one
removed, in the transaction that writes or removes it.

Vector index caches replay `vector_log` past the `seq` they saved (retrievers/indexes.py).
Until revision 0010 SQLite triggers wrote it and PostgreSQL had no such triggers; now this
module does on both, so every path that removes vectors, a database cascade included, logs
them here first. Each call is one set-based statement, whatever the number of vectors.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, func, insert, literal, select
from sqlalchemy.orm import Session

from assay.kit.db import table_of
from assay.models import DocumentVector, VectorLogEntry

_LOG = table_of(VectorLogEntry)
_VECTORS = table_of(DocumentVector)
_COLUMNS = ["collection_id", "feature_uri", "doc_key", "op"]
# pg_advisory_xact_lock key of the log's writers (any constant unique within Assay).
_LOG_LOCK_KEY = 0x417373_6179_4C6F


def take_turn(session: Session) -> None:
    """Wait until no other transaction writing the log is open (PostgreSQL; held until this
    one ends). An index replays `seq > watermark`, so seqs must become visible in the order
    they were drawn: two open writers could commit 11 before 10, and an index that saw 11
    would skip 10 for ever. SQLite has one writer at a time already. Transactions that lock
    other rows as well take their turn first, so that no two wait on each other."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_LOG_LOCK_KEY)))


def log_vectors(session: Session, op: str, where: ColumnElement[bool]) -> None:
    """Log `op` (`+` or `-`) for every row of `document_vectors` matching `where`. Nothing
    matching, nothing logged and no turn taken: removing documents that never had vectors
    (text-only, passthrough) does not queue behind the writers of vectors."""
    if op == "-" and not session.scalar(select(exists().where(where))):
        return
    take_turn(session)
    rows = select(
        _VECTORS.c.collection_id, _VECTORS.c.feature_uri, _VECTORS.c.doc_key, literal(op)
    ).where(where)
    session.execute(insert(_LOG).from_select(_COLUMNS, rows))
