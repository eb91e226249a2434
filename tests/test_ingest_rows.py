"""The driver-level SQLite INSERTs of `kit/bulk.insert_rows` (registration's objects, blobs and
bytes; extraction's documents and vectors; events) store exactly what SQLAlchemy's would."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from assay.errors import Conflict
from assay.kit import db as kit_db  # as a module: SQLite alone, not once per backend
from assay.kit.bulk import insert_rows
from assay.kit.db import table_of
from assay.migrations.runner import upgrade_to_head
from assay.models import Blob, BlobBytes, Bucket, Document, DocumentVector, Namespace, Object
from assay.objects.repository import insert_object_rows

NOW = dt.datetime(2026, 11, 30, 22, 10, 5, 123456, tzinfo=dt.UTC)


def _rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    objects = [
        {
            "object_id": f"obj_{i}",
            "namespace_id": "ns_1",
            "bucket_id": "bkt_1",
            "key_prefix": None if i else "/p",
            "metadata": {"k": "välue", "n": [1, 2.5, None], "deep": {"x": True}},
            "properties": {} if i else {"size": 3},
            "status": "DRAFT",
            "created_at": NOW,
            "updated_at": NOW.replace(tzinfo=None),  # naive: read as UTC
        }
        for i in range(2)
    ]
    blobs = [
        {
            "blob_id": f"blob_{i}",
            "object_id": f"obj_{i}",
            "namespace_id": "ns_1",
            "position": i,
            "property": "text",
            "type": "text",
            "sha256": "ab" * 32,
            "size_bytes": 3,
            "content_type": "text/plain",
            "storage_key": "k1",
            "filename": "a.txt" if i else None,
            "source_url": None,
            "key_prefix": None,
            "metadata": {},
            "created_at": NOW,
        }
        for i in range(2)
    ]
    # The same content twice: the second row is skipped, as a duplicate key is the same bytes.
    small = [{"storage_key": "k1", "namespace_id": "ns_1", "data": b"\x00abc"}] * 2
    return objects, blobs, small


def _document_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Documents as extraction writes them (some columns left to their defaults) and vectors."""
    documents = [
        {
            "document_id": f"doc_{i}",
            "doc_key": 2**62 + i,
            "namespace_id": "ns_1",
            "collection_id": "col_1",
            "object_id": f"obj_{i}",
            "blob_id": f"blob_{i}",
            "property": "text",
            "segment_key": f"{i}",
            "segment": {"start_ms": i * 10} if i else None,
            "extractor": "text_extractor",
            "extractor_version": "v1",
            "content": {"text": "ünïcode ✓", "labels": [{"label": "x", "score": 0.5}]},
            "search_text": "ünïcode",
        }
        for i in range(2)
    ]
    vectors = [
        {
            "document_id": f"doc_{i}",
            "feature_uri": "assay://text_extractor@v1/text_embedding",
            "doc_key": 2**62 + i,
            "namespace_id": "ns_1",
            "collection_id": "col_1",
            "vector": np.linspace(-1, 1, 8, dtype=np.float32) if i else [0.25, -0.5, 1e-7],
        }
        for i in range(2)
    ]
    return documents, vectors


def _parents(session: Any) -> None:
    session.add(Namespace(namespace_id="ns_1", namespace_name="n"))
    session.flush()  # the namespace first: no relationship tells the unit of work the order
    session.add(Bucket(bucket_id="bkt_1", namespace_id="ns_1", bucket_name="b"))
    session.flush()


def _via_sqlalchemy(session: Any) -> None:
    """SQLAlchemy's own executemany of its `insert()` constructs."""
    _parents(session)
    objects, blobs, small = _rows()
    documents, vectors = _document_rows()
    session.execute(insert(table_of(Object)), objects)
    session.execute(insert(table_of(Blob)), blobs)
    session.execute(sqlite_insert(table_of(BlobBytes)).on_conflict_do_nothing(), small)
    session.execute(insert(table_of(Document)), documents)
    session.execute(insert(table_of(DocumentVector)), vectors)


def _stored(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        typed = ", ".join(f"{c}, typeof({c})" for c in columns)
        return conn.execute(f"SELECT {typed} FROM {table} ORDER BY rowid").fetchall()


def _database(path: Path) -> kit_db.Database:
    url = f"sqlite:///{path}"
    upgrade_to_head(url)
    return kit_db.Database(url)


def _via_registration(session: Any) -> None:
    _parents(session)
    insert_object_rows(session, *_rows())
    documents, vectors = _document_rows()
    insert_rows(session, table_of(Document), documents)
    insert_rows(session, table_of(DocumentVector), vectors)


def test_registration_rows_are_stored_as_sqlalchemy_stores_them(tmp_path: Path) -> None:
    fast, plain = _database(tmp_path / "fast.db"), _database(tmp_path / "plain.db")
    try:
        fast.write_sync(_via_registration)
        plain.write_sync(_via_sqlalchemy)
    finally:
        fast.close()
        plain.close()
    for table in ("namespaces", "buckets"):  # parents: same but for their creation times
        assert len(_stored(tmp_path / "fast.db", table)) == 1
    for table in ("objects", "blobs", "document_vectors"):
        assert _stored(tmp_path / "fast.db", table) == _stored(tmp_path / "plain.db", table)
    fast_docs, plain_docs = (_stored(tmp_path / n, "documents") for n in ("fast.db", "plain.db"))
    assert len(fast_docs) == len(plain_docs) == 2
    with sqlite3.connect(tmp_path / "fast.db") as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(documents)")]
    at = 2 * columns.index("created_at")  # the default, now: equal in all but its value
    for fast_doc, plain_doc in zip(fast_docs, plain_docs, strict=True):
        assert fast_doc[:at] + fast_doc[at + 1 :] == plain_doc[:at] + plain_doc[at + 1 :]
    (fast_bytes,), (plain_bytes,) = (
        _stored(tmp_path / name, "blob_bytes") for name in ("fast.db", "plain.db")
    )
    # created_at is the default, now: equal in all but its value, which has the same form.
    assert fast_bytes[:6] == plain_bytes[:6]
    assert fast_bytes[7] == plain_bytes[7] == "text"
    form = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")
    assert form.fullmatch(fast_bytes[6]) and form.fullmatch(plain_bytes[6])


def test_a_failed_insert_raises_as_sqlalchemy_does(tmp_path: Path) -> None:
    """A constraint the rows break is the Conflict (409) it was, not a bare driver error."""
    db = _database(tmp_path / "a.db")
    try:
        with pytest.raises(Conflict):  # no namespace or bucket: their foreign keys fail
            db.write_sync(lambda s: insert_object_rows(s, *_rows()))
    finally:
        db.close()


def test_timestamps_shared_and_alternating_are_each_stored_as_given(tmp_path: Path) -> None:
    # A timestamp's bind processor keeps its last value (a group's rows share one `now`):
    # the same object again, another one, then the first again must each be stored as given.
    other = NOW + dt.timedelta(microseconds=1)
    stamps = [NOW, NOW, other, NOW, other, other, NOW]
    db = _database(tmp_path / "a.db")
    try:

        def write(session: Any) -> None:
            _parents(session)
            objects, _, _ = _rows()
            rows = [
                {**objects[0], "object_id": f"obj_{i}", "created_at": NOW, "updated_at": at}
                for i, at in enumerate(stamps)
            ]
            insert_rows(session, table_of(Object), rows)

        db.write_sync(write)
    finally:
        db.close()
    with sqlite3.connect(tmp_path / "a.db") as conn:
        stored = [r[0] for r in conn.execute("SELECT updated_at FROM objects ORDER BY rowid")]
    text = {NOW: "2026-11-30 22:10:05.123456", other: "2026-11-30 22:10:05.123457"}
    assert stored == [text[at] for at in stamps]


def test_a_prebuilt_update_through_the_driver_stores_what_sqlalchemy_stores(
    tmp_path: Path,
) -> None:
    # `kit/bulk.execute` (the bucket counters, once per group commit): the same row as
    # SQLAlchemy's own execution, `updated_at` (an `onupdate` SQLAlchemy fills) included.
    from assay.buckets.repository import _ADD_STATS
    from assay.kit.bulk import execute

    params = {"b_id": "bkt_1", "ns_id": "ns_1", "n": 3, "size": 2**40}
    missing = {**params, "b_id": "bkt_gone"}
    matched = {}
    for name, run in (
        ("fast", lambda s, p: execute(s, _ADD_STATS, p)),
        ("plain", lambda s, p: s.execute(_ADD_STATS, p).rowcount),
    ):
        db = _database(tmp_path / f"{name}.db")
        try:
            db.write_sync(_parents)
            matched[name] = db.write_sync(lambda s, run=run: (run(s, params), run(s, missing)))
        finally:
            db.close()
    assert matched == {"fast": (1, 0), "plain": (1, 0)}
    fast, plain = (_stored(tmp_path / f"{n}.db", "buckets") for n in ("fast", "plain"))
    with sqlite3.connect(tmp_path / "fast.db") as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(buckets)")]
    stamps = [2 * columns.index(c) for c in ("created_at", "updated_at")]
    keep = [i for i in range(len(fast[0])) if i not in stamps]  # times differ, not their form
    assert [[row[i] for i in keep] for row in fast] == [[row[i] for i in keep] for row in plain]
    (row,) = fast
    assert row[2 * columns.index("object_count")] == 3
    assert row[stamps[1]] > row[stamps[0]]  # touched by the update, stored as text


def test_a_prebuilt_select_through_the_driver_reads_what_sqlalchemy_reads(
    tmp_path: Path,
) -> None:
    # `kit/bulk.first` (whether a namespace has an active webhook, per group of events): the
    # statement's own LIMIT goes with it, and the answer is SQLAlchemy's.
    from assay.kit.bulk import first

    stmt = (
        select(Bucket.bucket_name, Bucket.object_count)
        .where(Bucket.namespace_id == bindparam("ns_id"))
        .order_by(Bucket.bucket_name)
        .limit(1)
    )
    db = _database(tmp_path / "a.db")
    try:
        db.write_sync(_parents)
        db.write_sync(
            lambda s: s.add(Bucket(bucket_id="bkt_2", namespace_id="ns_1", bucket_name="a"))
        )
        read = {
            ns: db.read_sync(
                lambda s, ns=ns: (
                    first(s, stmt, {"ns_id": ns}),
                    s.execute(stmt, {"ns_id": ns}).first(),
                )
            )
            for ns in ("ns_1", "ns_gone")
        }
    finally:
        db.close()
    assert read["ns_1"] == (("a", 0), ("a", 0))
    assert read["ns_gone"] == (None, None)


def test_prebuilt_selects_read_rows_as_sqlalchemy_reads_them(tmp_path: Path) -> None:
    # `kit/bulk.rows` (every search: the plan, its collections, the vector log, the hits'
    # documents): JSON decoded, timestamps UTC, a label's name, an expanding IN of any
    # length (none included) and a constant LIMIT, each row equal to SQLAlchemy's.
    from assay.kit.bulk import first, rows
    from assay.retrievers.repository import _HITS, _PLAN_BY_NAME

    in_keys = select(Document.document_id, Document.segment).where(
        Document.doc_key.in_(bindparam("keys", expanding=True)),
        Document.namespace_id == bindparam("ns"),
    )
    limited = select(Document.document_id).order_by(Document.doc_key).limit(1)
    asked: list[tuple[Any, dict[str, Any]]] = [
        (_HITS, {"keys": [2**62 + 1, 2**62, 5]}),
        (_HITS, {"keys": [2**62]}),
        (_HITS, {"keys": []}),
        (in_keys, {"keys": [2**62 + 1], "ns": "ns_1"}),
        (in_keys, {"keys": [2**62, 2**62 + 1], "ns": "ns_gone"}),
        (limited, {}),
        (_PLAN_BY_NAME, {"ns": "ns_1", "ident": "none"}),
    ]
    db = _database(tmp_path / "a.db")
    try:
        db.write_sync(_via_registration)
        for statement, params in asked:
            fast, plain = db.read_sync(
                lambda s, st=statement, p=params: (rows(s, st, p), s.execute(st, p).all())
            )
            assert [tuple(r) for r in fast] == [tuple(r) for r in plain]
            assert all(r._fields == p._fields for r, p in zip(fast, plain, strict=True))
        one = db.read_sync(lambda s: first(s, _HITS, {"keys": [2**62 + 1]}))
    finally:
        db.close()
    assert one.metadata_ == {} and one.segment == {"start_ms": 10}
    assert one.content["text"] == "ünïcode ✓" and one.created_at.tzinfo is dt.UTC
