"""pgvector as a FeatureIndex: exact within selective filters, HNSW with iterative scans
otherwise, recall kept under a filter that passes 10 % of the documents."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.orm import Session

from assay.backends.vector.base import VectorIndexError
from assay.backends.vector.pgvector import PgVectorIndexes
from assay.kit.ids import int_key, new_id
from assay.models import Bucket, Document, DocumentVector, Namespace, Object
from assay.retrievers.candidates import Candidates
from tests.databases import PostgresServer

URI = "assay://text_extractor@v1/text_embedding"
COLLECTION = "col_pgvector"
DIMS = 32
N = 4_000


@pytest.fixture
def engine(postgres: PostgresServer) -> Iterator[Engine]:
    name = postgres.new_database()
    engine = create_engine(postgres.url(name))
    with Session(engine) as s, s.begin():
        s.add(Namespace(namespace_id="ns_test", namespace_name="test"))
        s.flush()
        s.add(Bucket(bucket_id="bkt_test", namespace_id="ns_test", bucket_name="b"))
        s.flush()
        s.add(Object(object_id="obj_test", namespace_id="ns_test", bucket_id="bkt_test"))
    try:
        yield engine
    finally:
        engine.dispose()
        postgres.drop(name)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def add_vectors(engine: Engine, vectors: np.ndarray, collection: str = COLLECTION) -> np.ndarray:
    ids = [new_id("doc") for _ in range(len(vectors))]
    keys = np.asarray([int_key(i) for i in ids], dtype=np.uint64)
    docs = [
        {"document_id": d, "doc_key": int(k), "namespace_id": "ns_test",
         "collection_id": collection, "object_id": "obj_test", "blob_id": d,
         "property": "body", "segment_key": "", "extractor": "text_extractor",
         "extractor_version": "v1", "content": {}, "search_text": "", "metadata": {"part": i % 10}}
        for i, (d, k) in enumerate(zip(ids, keys, strict=True))
    ]  # fmt: skip
    rows = [
        {"document_id": d, "feature_uri": URI, "doc_key": int(k), "namespace_id": "ns_test",
         "collection_id": collection, "vector": v}
        for d, k, v in zip(ids, keys, vectors, strict=True)
    ]  # fmt: skip
    with Session(engine) as s, s.begin():
        s.execute(insert(Document.__table__), docs)
        s.execute(insert(DocumentVector.__table__), rows)
    return keys


def search(
    index: PgVectorIndexes, engine: Engine, query: np.ndarray, k: int,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    with Session(engine) as s:
        candidates = None if allowed is None else Candidates.of(allowed)
        return index.search(s, COLLECTION, URI, query, k, candidates)


def exact(vectors: np.ndarray, keys: np.ndarray, query: np.ndarray, k: int) -> set[int]:
    order = np.argsort(-(vectors @ query), kind="stable")[:k]
    return set(keys[order].tolist())


def test_nearest_vectors_come_back_best_first_with_cosine_scores(engine: Engine) -> None:
    rng = np.random.default_rng(0)
    vectors = _unit(rng.normal(size=(300, DIMS)))
    keys = add_vectors(engine, vectors)
    index = PgVectorIndexes(engine, exact_limit=50)
    found, sims = search(index, engine, vectors[7], 5)
    assert int(found[0]) == int(keys[7]) and sims[0] == pytest.approx(1.0, abs=2e-3)
    assert list(sims) == sorted(sims, reverse=True)
    with Session(engine) as s:
        assert index.size(s, COLLECTION, URI) == 300
        assert set(index.keys(s, COLLECTION, URI).tolist()) == set(keys.tolist())
        names = s.scalars(
            text("SELECT indexname FROM pg_indexes WHERE starts_with(indexname, 'ix_vec_')")
        ).all()
    assert names == [index.index_name(COLLECTION, URI)]
    index.drop([COLLECTION])
    with Session(engine) as s:
        assert not s.scalar(
            text("SELECT count(*) FROM pg_indexes WHERE starts_with(indexname, 'ix_vec_')")
        )


@pytest.mark.parametrize("exact_limit", [10_000, 10], ids=["candidates", "hnsw-iterative"])
def test_filtered_search_keeps_its_recall(engine: Engine, exact_limit: int) -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(40, DIMS))
    vectors = _unit(centres[rng.integers(0, 40, N)] + 0.3 * rng.normal(size=(N, DIMS)))
    keys = add_vectors(engine, vectors)
    allowed_mask = rng.random(N) < 0.10
    allowed = np.sort(keys[allowed_mask])
    index = PgVectorIndexes(engine, exact_limit=exact_limit)
    queries = _unit(centres[:20] + 0.3 * rng.normal(size=(20, DIMS)))
    hits = total = 0
    for q in queries:
        truth = exact(vectors[allowed_mask], keys[allowed_mask], q, 10)
        found, _ = search(index, engine, q, 10, allowed)
        assert set(found.tolist()) <= set(allowed.tolist())
        hits += len(truth & set(found.tolist()))
        total += len(truth)
    assert hits / total >= 0.95


@pytest.mark.parametrize("exact_limit", [10_000, 10], ids=["candidates", "hnsw-iterative"])
def test_a_filter_kept_as_sql_keeps_its_recall(engine: Engine, exact_limit: int) -> None:
    """The filter as a subquery (what a retriever's filters become): only passing documents
    come back, as many of the true nearest as with the keys bound."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, DIMS))
    vectors = _unit(centres[rng.integers(0, 40, N)] + 0.3 * rng.normal(size=(N, DIMS)))
    keys = add_vectors(engine, vectors)
    passing = np.arange(N) % 10 == 0  # metadata.part == 0
    index = PgVectorIndexes(engine, exact_limit=exact_limit)
    part = Document.metadata_["part"].as_integer()
    hits = total = 0
    with Session(engine) as s:
        filtered = select(Document.doc_key).where(Document.collection_id == COLLECTION, part == 0)
        for q in _unit(centres[:20] + 0.3 * rng.normal(size=(20, DIMS))):
            found, _ = index.search(s, COLLECTION, URI, q, 10, Candidates(s, query=filtered))
            assert set(found.tolist()) <= set(keys[passing].tolist())
            truth = exact(vectors[passing], keys[passing], q, 10)
            hits += len(truth & set(found.tolist()))
            total += len(truth)
        nothing = select(Document.doc_key).where(part == 99)
        assert len(index.search(s, COLLECTION, URI, q, 5, Candidates(s, query=nothing))[0]) == 0
    assert hits / total >= 0.95


def test_other_collections_and_wrong_dimensions(engine: Engine) -> None:
    rng = np.random.default_rng(2)
    add_vectors(engine, _unit(rng.normal(size=(50, DIMS))), collection="col_other")
    index = PgVectorIndexes(engine, exact_limit=10)
    found, _ = search(index, engine, _unit(rng.normal(size=DIMS)), 5)
    assert len(found) == 0  # nothing in this collection yet
    mine = add_vectors(engine, _unit(rng.normal(size=(20, DIMS))))
    found, _ = search(index, engine, _unit(rng.normal(size=DIMS)), 50)
    assert set(found.tolist()) == set(mine.tolist())
    with pytest.raises(VectorIndexError, match="32-d"):
        search(index, engine, _unit(rng.normal(size=DIMS + 1)), 5)
    empty, _ = search(index, engine, _unit(rng.normal(size=DIMS)), 5, np.empty(0, np.uint64))
    assert len(empty) == 0
