"""The vector indexes follow `document_vectors` whatever happens around them: changes made by
another process, a restart, a damaged or stale index file, a process killed mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from assay.documents.log import log_vectors
from assay.documents.text import index_texts
from assay.documents.vectors import pack_vector
from assay.kit.engines import make_engine
from assay.kit.ids import int_key, new_id
from assay.migrations.runner import upgrade_to_head
from assay.models import Bucket, Document, DocumentVector, Namespace, Object
from assay.retrievers.indexes import _INLINE_CHANGES, FeatureIndexes
from assay.retrievers.inline import RunInThread

URI = "assay://text_extractor@v1/text_embedding"
COLLECTION = "col_test"
DIMS = 16


pytestmark = pytest.mark.database  # once per backend: the file index runs on either


@pytest.fixture
def db_url(tmp_path: Path, database_backend: str) -> str:
    url = f"sqlite:///{tmp_path / 'assay.db'}"
    if database_backend == "pg":
        url = os.environ["ASSAY_DATABASE_URL"]
    upgrade_to_head(url)
    with Session(make_engine(url)) as s, s.begin():
        s.add(Namespace(namespace_id="ns_test", namespace_name="test"))
        s.flush()
        s.add(Bucket(bucket_id="bkt_test", namespace_id="ns_test", bucket_name="b"))
        s.flush()
        s.add(Object(object_id="obj_test", namespace_id="ns_test", bucket_id="bkt_test"))
    return url


def add_documents(url: str, n: int, seed: int) -> dict[int, np.ndarray]:
    """`n` documents with random vectors, written as another process would: own engine."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIMS)).astype(np.float32)
    docs, rows, found = [], [], {}
    for v in vectors:
        doc_id = new_id("doc")
        key = int_key(doc_id)
        found[key] = v / np.linalg.norm(v)
        docs.append(_document(doc_id, key))
        rows.append(
            {"document_id": doc_id, "feature_uri": URI, "doc_key": key, "namespace_id": "ns_test",
             "collection_id": COLLECTION, "vector": pack_vector(v)}
        )  # fmt: skip
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        s.execute(insert(Document.__table__), docs)
        index_texts(s, docs)  # as the documents layer does
        s.execute(insert(DocumentVector.__table__), rows)
        log_vectors(s, "+", DocumentVector.doc_key.in_(list(found)))
    engine.dispose()
    return found


def _document(doc_id: str, key: int) -> dict[str, object]:
    return {
        "document_id": doc_id, "doc_key": key, "namespace_id": "ns_test",
        "collection_id": COLLECTION, "object_id": "obj_test", "blob_id": doc_id,
        "property": "body", "segment_key": "", "extractor": "text_extractor",
        "extractor_version": "v1", "content": {}, "search_text": "", "metadata": {},
    }  # fmt: skip


def delete_documents(url: str, keys: list[int]) -> None:
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        log_vectors(s, "-", DocumentVector.doc_key.in_(keys))  # as the documents layer does
        s.execute(delete(Document).where(Document.doc_key.in_(keys)))
    engine.dispose()


def table_keys(url: str) -> set[int]:
    engine = make_engine(url)
    with Session(engine) as s:
        keys = set(s.scalars(select(DocumentVector.doc_key)))
    engine.dispose()
    return keys


def index_keys(indexes: FeatureIndexes, url: str) -> set[int]:
    """Every key the index holds after catching up (an HNSW search for all of them may miss
    some: the graph walk is approximate)."""
    engine = make_engine(url)
    with Session(engine) as s:
        keys = indexes.keys(s, COLLECTION, URI)
    engine.dispose()
    return set(keys.tolist())


def nearest(indexes: FeatureIndexes, url: str, query: np.ndarray) -> int:
    engine = make_engine(url)
    with Session(engine) as s:
        keys, _ = indexes.search(s, COLLECTION, URI, query, 1)
    engine.dispose()
    return int(keys[0])


@pytest.mark.parametrize("exact_limit", [10_000, 50], ids=["exact", "hnsw"])
def test_index_replays_changes_made_elsewhere(
    db_url: str, tmp_path: Path, exact_limit: int
) -> None:
    indexes = FeatureIndexes(tmp_path / "indexes", exact_limit=exact_limit)
    first = add_documents(db_url, 120, seed=1)
    assert index_keys(indexes, db_url) == set(first)
    key, vec = next(iter(first.items()))
    assert nearest(indexes, db_url, vec) == key

    # another process deletes some (an object's cascade) and adds more
    gone = list(first)[:30]
    delete_documents(db_url, gone)
    second = add_documents(db_url, 40, seed=2)
    assert (
        index_keys(indexes, db_url) == table_keys(db_url) == (set(first) - set(gone)) | set(second)
    )
    k2, v2 = next(iter(second.items()))
    assert nearest(indexes, db_url, v2) == k2


def test_restart_loads_the_saved_index_and_catches_up(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "indexes"
    first = add_documents(db_url, 200, seed=3)
    indexes = FeatureIndexes(root, exact_limit=50)
    assert index_keys(indexes, db_url) == set(first)  # built, and saved by the rebuild
    saved = indexes.path(COLLECTION, URI)
    assert saved.exists()
    mtime = saved.stat().st_mtime_ns

    # changes while no process has the index open, then a "restart"
    delete_documents(db_url, list(first)[:50])
    more = add_documents(db_url, 25, seed=4)
    restarted = FeatureIndexes(root, exact_limit=50)
    assert index_keys(restarted, db_url) == table_keys(db_url)
    assert saved.stat().st_mtime_ns == mtime  # replayed from the log, not rebuilt
    assert set(more) <= index_keys(restarted, db_url)


def test_damaged_or_disagreeing_index_files_are_rebuilt(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "indexes"
    add_documents(db_url, 150, seed=5)
    indexes = FeatureIndexes(root, exact_limit=50)
    index_keys(indexes, db_url)
    indexes.save_all()
    path = indexes.path(COLLECTION, URI)

    path.write_bytes(path.read_bytes()[:100])  # torn
    assert index_keys(FeatureIndexes(root, exact_limit=50), db_url) == table_keys(db_url)

    # an index whose watermark claims changes the table never had (a restored database):
    # the log shows nothing new, but the sizes disagree, so it is rebuilt
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        victims = list(s.scalars(select(DocumentVector.doc_key).limit(10)))
        s.execute(delete(DocumentVector).where(DocumentVector.doc_key.in_(victims)))
    engine.dispose()
    assert index_keys(FeatureIndexes(root, exact_limit=50), db_url) == table_keys(db_url)


_WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from sqlalchemy.orm import Session
    from assay.kit.engines import make_engine
    from assay.retrievers.indexes import FeatureIndexes
    import assay.retrievers.indexes as mod
    from tests.test_vector_indexes import COLLECTION, DIMS, URI, add_documents, delete_documents

    mod._SAVE_EVERY_CHANGES = 1  # save after every change: the kill lands mid-save often
    url, root = sys.argv[1], sys.argv[2]
    indexes = FeatureIndexes(__import__("pathlib").Path(root), exact_limit=50)
    seed = 100
    while True:
        keys = list(add_documents(url, 20, seed))
        delete_documents(url, keys[:5])
        engine = make_engine(url)
        with Session(engine) as s:
            indexes.search(s, COLLECTION, URI, np.ones(DIMS, np.float32), 5)
        engine.dispose()
        print(seed, flush=True)
        seed += 1
    """
)


def test_a_process_killed_mid_write_leaves_nothing_inconsistent(
    db_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "indexes"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, db_url, str(root)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert proc.stdout is not None
        for _ in range(3 + round_):  # let it write and save a few times
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert index_keys(FeatureIndexes(root, exact_limit=50), db_url) == table_keys(db_url)


def test_an_inline_search_leaves_long_work_to_a_thread(db_url: str, tmp_path: Path) -> None:
    # `retrievers/inline.py`: on the event loop a search neither opens an index, nor waits
    # for another search of it, nor replays more than a few vector-log changes; it raises
    # `RunInThread` and leaves the index as it was, for the thread's run to do it.
    indexes = FeatureIndexes(tmp_path / "indexes", exact_limit=50)
    first = add_documents(db_url, 60, seed=1)
    key, vec = next(iter(first.items()))
    engine = make_engine(db_url)
    try:
        with Session(engine) as s:

            def inline_nearest() -> int:
                keys, _ = indexes.search(s, COLLECTION, URI, vec, 1, inline=True)
                return int(keys[0])

            with pytest.raises(RunInThread):  # not open yet
                inline_nearest()
            assert nearest(indexes, db_url, vec) == key  # a thread's search opens it
            assert inline_nearest() == key
            entry = indexes._entries[(COLLECTION, URI)]
            with entry.lock, pytest.raises(RunInThread):  # another search holds it
                inline_nearest()
            s.rollback()  # a new snapshot, as the next request's
            few = add_documents(db_url, _INLINE_CHANGES, seed=2)
            inline_nearest()
            assert len(indexes.open_sizes()) == 1 and entry.index is not None
            assert len(entry.index) == 60 + len(few)
            s.rollback()
            add_documents(db_url, _INLINE_CHANGES + 1, seed=3)
            with pytest.raises(RunInThread):
                inline_nearest()
            assert len(entry.index) == 60 + len(few)
    finally:
        engine.dispose()
    assert index_keys(indexes, db_url) == table_keys(db_url)
