"""The documents layer: drafts become documents, vectors and `vector_log` rows in the caller's
transaction; every path that removes vectors logs them first; a vector that does not fit its
feature fails its object, never the database; searches follow batches and deletes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from assay.batches.service import JOB_KIND
from assay.batches.tasks import BatchExtraction
from assay.buckets.repository import BucketRepository
from assay.collections.repository import CollectionRepository
from assay.config import Settings
from assay.documents.drafts import DerivedBlob, DocumentDraft
from assay.documents.writer import DocumentWriter, InvalidDraft, Target, prepare
from assay.engine.local import LocalWorkers
from assay.extractors.base import Extractor, ObjectInput
from assay.extractors.builtin.catalogue import MULTIMODAL, TEXT, TEXT_DIM
from assay.extractors.registry import ExtractorRegistry
from assay.kit.engines import make_engine
from assay.migrations.runner import alembic_config, upgrade_to_head
from assay.models import (
    Bucket,
    Collection,
    Document,
    DocumentVector,
    Namespace,
    Object,
    VectorLogEntry,
)
from assay.namespaces.repository import NamespaceRepository
from assay.objects.repository import ObjectRepository
from assay.retrievers.fulltext import postgres_bm25, sqlite_bm25
from tests.conftest import ADMIN_KEY

TEXT_URI = TEXT.feature_uri("text_embedding")
CLIP_URI = MULTIMODAL.feature_uri("clip_embedding")
NS_ID, BUCKET_ID = "ns_docs", "bkt_docs"
TEXT_TARGET = Target("col_text", TEXT)
CLIP_TARGET = Target("col_clip", MULTIMODAL)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, workers=0)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Any]:
    """A migrated database (SQLite, or PostgreSQL when the run says so) holding a namespace,
    two buckets with two objects each, and two collections."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.database_url)
    engine = make_engine(settings.database_url)
    with Session(engine) as s, s.begin():
        s.add(Namespace(namespace_id=NS_ID, namespace_name="docs"))
        s.flush()
        for b in ("bkt_docs", "bkt_more"):
            s.add(Bucket(bucket_id=b, namespace_id=NS_ID, bucket_name=b))
        s.flush()
        for i, b in enumerate(("bkt_docs", "bkt_docs", "bkt_more", "bkt_more")):
            s.add(Object(object_id=f"obj_{i}", namespace_id=NS_ID, bucket_id=b))
        for target in (TEXT_TARGET, CLIP_TARGET):
            spec = target.extractor
            s.add(
                Collection(
                    collection_id=target.collection_id,
                    namespace_id=NS_ID,
                    collection_name=spec.name,
                    extractor_name=spec.name,
                    extractor_version=spec.version,
                )
            )
    yield engine
    engine.dispose()


def drafts(n: int, seed: int, dims: int = TEXT_DIM, uri: str = TEXT_URI) -> list[DocumentDraft]:
    rng = np.random.default_rng(seed)
    return [
        DocumentDraft(
            blob_id=f"blob_{seed}",
            property="body",
            content={"text": f"chunk {i} of {seed}"},
            segment={"start_char": i, "end_char": i + 1},
            features={uri: rng.normal(size=dims).astype(np.float32)},
        )
        for i in range(n)
    ]


def write(s: Session, target: Target, per_object: dict[str, list[DocumentDraft]]) -> int:
    writer = DocumentWriter(s, NS_ID)
    prepared = [prepare(target, NS_ID, o, d) for o, d in per_object.items()]
    for p in prepared:
        writer.check([(target, p)])
    return writer.replace(target, prepared)


def table_keys(s: Session) -> set[tuple[str, str, int]]:
    rows = s.execute(
        select(DocumentVector.collection_id, DocumentVector.feature_uri, DocumentVector.doc_key)
    )
    return {tuple(r) for r in rows}  # type: ignore[misc]


def logged(s: Session, op: str) -> set[tuple[str, str, int]]:
    rows = s.execute(
        select(VectorLogEntry.collection_id, VectorLogEntry.feature_uri, VectorLogEntry.doc_key)
        .where(VectorLogEntry.op == op)
    )  # fmt: skip
    return {tuple(r) for r in rows}  # type: ignore[misc]


def replayed(s: Session) -> set[tuple[str, str, int]]:
    """What an index that replayed the whole log holds (keys are never reused)."""
    return logged(s, "+") - logged(s, "-")


def keys_of_objects(s: Session, object_ids: list[str]) -> set[tuple[str, str, int]]:
    rows = s.execute(
        select(DocumentVector.collection_id, DocumentVector.feature_uri, DocumentVector.doc_key)
        .join(Document, Document.document_id == DocumentVector.document_id)
        .where(Document.object_id.in_(object_ids))
    )  # fmt: skip
    return {tuple(r) for r in rows}  # type: ignore[misc]


# ------------------------------------------------------------------------- writing


def test_documents_vectors_and_log_rows_share_the_callers_transaction(engine: Any) -> None:
    with Session(engine) as s, s.begin():
        assert write(s, TEXT_TARGET, {"obj_0": drafts(3, 1), "obj_1": drafts(2, 2)}) == 5
        written = table_keys(s)
        assert len(written) == 5 and logged(s, "+") == written and logged(s, "-") == set()
        s.rollback()  # the caller decides: nothing of it stays
    with Session(engine) as s:
        assert table_keys(s) == set() and replayed(s) == set()
        assert s.scalar(select(func.count()).select_from(Document)) == 0

    with Session(engine) as s, s.begin():
        write(s, TEXT_TARGET, {"obj_0": drafts(3, 1), "obj_1": drafts(2, 2)})
    with Session(engine) as s:
        assert len(table_keys(s)) == 5 and replayed(s) == table_keys(s)
        doc = s.scalars(select(Document).where(Document.object_id == "obj_0")).first()
        assert doc is not None and doc.content == {"text": doc.content["text"]}
        assert doc.search_text == doc.content["text"] and doc.extractor == "text_extractor"


def test_replacing_logs_the_old_vectors_out_before_the_new_ones_in(engine: Any) -> None:
    with Session(engine) as s, s.begin():
        write(s, TEXT_TARGET, {"obj_0": drafts(3, 1), "obj_1": drafts(2, 2)})
    with Session(engine) as s:
        first = table_keys(s)
        old_0 = keys_of_objects(s, ["obj_0"])
    with Session(engine) as s, s.begin():  # obj_0 again (a re-run), with other chunks
        write(s, TEXT_TARGET, {"obj_0": drafts(4, 3)})
    with Session(engine) as s:
        now = table_keys(s)
        assert len(now) == 6 and now & first == first - old_0
        assert logged(s, "-") == old_0 and replayed(s) == now
        ops = s.execute(
            select(VectorLogEntry.op).where(VectorLogEntry.seq > len(first)).order_by(
                VectorLogEntry.seq
            )
        ).scalars().all()  # fmt: skip
        assert "".join(ops) == "---" + "++++"

    with Session(engine) as s, s.begin():  # an object that now yields nothing keeps nothing
        write(s, TEXT_TARGET, {"obj_1": []})
    with Session(engine) as s:
        assert keys_of_objects(s, ["obj_1"]) == set() and replayed(s) == table_keys(s)


def _text_matches(s: Session, word: str) -> set[int]:
    """Keys of the documents the full-text index finds for `word` (SQLite: the FTS5 index is
    checked against the documents' text first)."""
    collections = [TEXT_TARGET.collection_id, CLIP_TARGET.collection_id]
    if s.get_bind().dialect.name == "sqlite":
        check = "INSERT INTO document_text (document_text, rank) VALUES ('integrity-check', 1)"
        s.execute(text(check))  # raises when the index and the documents disagree
        return {key for key, _ in sqlite_bm25(s, NS_ID, collections, [word], 1000, None)}
    return {key for key, _ in postgres_bm25(s, NS_ID, collections, [word], 1000, None)}


def _document_keys(s: Session) -> set[int]:
    return set(s.scalars(select(Document.doc_key)))


def test_the_text_index_holds_exactly_the_stored_documents(engine: Any) -> None:
    with Session(engine) as s, s.begin():  # several writes in one transaction, as a group
        write(s, TEXT_TARGET, {f"obj_{i}": drafts(40, i) for i in range(3)})
        write(s, CLIP_TARGET, {"obj_3": drafts(5, 9, 16, CLIP_URI)})
    with Session(engine) as s:
        assert len(_document_keys(s)) == 125 and _text_matches(s, "chunk") == _document_keys(s)
    with Session(engine) as s, s.begin():  # a re-run replaces obj_0's, one yields nothing
        write(s, TEXT_TARGET, {"obj_0": drafts(7, 4), "obj_1": []})
    with Session(engine) as s:
        assert _text_matches(s, "chunk") == _document_keys(s) and len(_document_keys(s)) == 52
        texts = s.execute(select(Document.doc_key, Document.search_text)).all()
        with_4 = {key for key, found in texts if "4" in found.split()}
        assert len(with_4) == 9 and _text_matches(s, "4") == with_4  # new text, not the old
    with Session(engine) as s, s.begin():  # removals: an object, then a collection
        obj = ObjectRepository(s, NS_ID, BUCKET_ID).get("obj_0")
        assert obj is not None
        ObjectRepository(s, NS_ID, BUCKET_ID).delete(obj)
        collection = s.get(Collection, "col_clip")
        assert collection is not None
        CollectionRepository(s, NS_ID).delete(collection)
    with Session(engine) as s:
        assert _text_matches(s, "chunk") == _document_keys(s) and len(_document_keys(s)) == 40


def test_derived_blobs_become_references_in_the_content(engine: Any) -> None:
    stored: list[bytes] = []

    def store(data: bytes) -> str:
        stored.append(data)
        return "ab" * 32

    thumb = DerivedBlob(b"\xff\xd8jpeg", "image/jpeg", 320, 240)
    (draft,) = drafts(1, 5)
    draft = DocumentDraft(
        draft.blob_id, draft.property, {"transcript": "hi", "text": "hi"},
        features=draft.features, derived_blobs={"thumbnail": thumb},
    )  # fmt: skip
    p = prepare(TEXT_TARGET, NS_ID, "obj_0", [draft], store)
    assert stored == [thumb.data]
    assert p.documents[0]["content"] == {
        "transcript": "hi",
        "text": "hi",
        "thumbnail": {
            "sha256": "ab" * 32,
            "content_type": "image/jpeg",
            "size_bytes": len(thumb.data),
            "width": 320,
            "height": 240,
        },
    }
    with pytest.raises(ValueError, match="blob store"):
        prepare(TEXT_TARGET, NS_ID, "obj_0", [draft])


# ------------------------------------------------------------------------- refusing


@pytest.mark.parametrize(
    ("features", "words"),
    [
        ({TEXT_URI: np.ones(TEXT_DIM - 1)}, "takes 384-d vectors, not 383-d"),
        ({TEXT_URI: [[1.0, 2.0]]}, "flat vector"),
        ({TEXT_URI: []}, "flat vector"),
        ({TEXT_URI: ["a", "b"]}, "not a vector of numbers"),
        ({TEXT_URI: [float("nan")] * TEXT_DIM}, "NaN or infinite"),
        ({CLIP_URI: np.ones(16)}, "not a vector output of this extractor"),
    ],
)
def test_a_vector_that_does_not_fit_its_feature_is_refused_before_storage(
    features: dict[str, Any], words: str
) -> None:
    stored: list[bytes] = []
    draft = DocumentDraft(
        "blob_x", "body", {"text": "x"}, features=features,
        derived_blobs={"thumbnail": DerivedBlob(b"x", "image/jpeg")},
    )  # fmt: skip
    with pytest.raises(InvalidDraft, match=words) as info:
        prepare(TEXT_TARGET, NS_ID, "obj_0", [*drafts(1, 1), draft], stored.append)  # type: ignore[arg-type]
    assert info.value.error_type == "InvalidVector"
    assert stored == []  # nothing of a refused object was stored


def test_model_sized_vectors_must_match_what_the_collection_holds(engine: Any) -> None:
    with Session(engine) as s, s.begin():
        write(s, CLIP_TARGET, {"obj_0": drafts(2, 1, dims=16, uri=CLIP_URI)})
    with pytest.raises(InvalidDraft, match="16"):
        prepare(
            CLIP_TARGET, NS_ID, "obj_1", [*drafts(1, 2, 16, CLIP_URI), *drafts(1, 3, 8, CLIP_URI)]
        )
    with Session(engine) as s, s.begin():
        writer = DocumentWriter(s, NS_ID)
        other = prepare(CLIP_TARGET, NS_ID, "obj_1", drafts(1, 2, dims=32, uri=CLIP_URI))
        with pytest.raises(InvalidDraft, match="holds 16-d vectors"):
            writer.check([(CLIP_TARGET, other)])
        same = prepare(CLIP_TARGET, NS_ID, "obj_2", drafts(1, 3, dims=16, uri=CLIP_URI))
        writer.check([(CLIP_TARGET, same)])
        # In an empty collection, the first object's size becomes the rule for the next.
        empty = Target("col_text", MULTIMODAL)
        writer.check([(empty, prepare(empty, NS_ID, "obj_0", drafts(1, 4, 24, CLIP_URI)))])
        with pytest.raises(InvalidDraft, match="holds 24-d"):
            writer.check([(empty, prepare(empty, NS_ID, "obj_1", drafts(1, 5, 12, CLIP_URI)))])


# ------------------------------------------------------------------------- removing


def _fill(engine: Any) -> set[tuple[str, str, int]]:
    with Session(engine) as s, s.begin():
        write(s, TEXT_TARGET, {f"obj_{i}": drafts(2, i) for i in range(4)})
        write(s, CLIP_TARGET, {f"obj_{i}": drafts(1, 10 + i, 16, CLIP_URI) for i in range(4)})
    with Session(engine) as s:
        keys = table_keys(s)
        assert len(keys) == 12 and replayed(s) == keys
        return keys


def _removed_in_one_transaction(engine: Any, remove: Any) -> tuple[set[Any], set[Any]]:
    """Run `remove(session)` and check, inside its transaction, that exactly the vectors it
    made vanish were logged out; returns (vanished, remaining)."""
    before = _fill(engine)
    with Session(engine) as s, s.begin():
        remove(s)
        s.flush()
        after = table_keys(s)
        assert logged(s, "-") == before - after  # the log row and the delete, one transaction
        assert replayed(s) == after
    return before - after, after


def test_deleting_an_object_logs_its_vectors_out(engine: Any) -> None:
    def remove(s: Session) -> None:
        repo = ObjectRepository(s, NS_ID, BUCKET_ID)
        obj = repo.get("obj_1")
        assert obj is not None
        repo.delete(obj)

    gone, left = _removed_in_one_transaction(engine, remove)
    assert len(gone) == 3 and len(left) == 9
    with Session(engine) as s:
        assert keys_of_objects(s, ["obj_1"]) == set()
        assert s.get(Object, "obj_1") is None


def test_deleting_a_collection_logs_its_vectors_out(engine: Any) -> None:
    def remove(s: Session) -> None:
        collection = s.get(Collection, "col_clip")
        assert collection is not None
        CollectionRepository(s, NS_ID).delete(collection)

    gone, left = _removed_in_one_transaction(engine, remove)
    assert {c for c, _, _ in gone} == {"col_clip"} and len(gone) == 4
    assert {c for c, _, _ in left} == {"col_text"}


def test_deleting_a_bucket_logs_its_objects_vectors_out(engine: Any) -> None:
    def remove(s: Session) -> None:
        bucket = s.get(Bucket, "bkt_more")
        assert bucket is not None
        BucketRepository(s, NS_ID).delete(bucket)

    gone, left = _removed_in_one_transaction(engine, remove)
    assert len(gone) == 6 and len(left) == 6
    with Session(engine) as s:
        assert keys_of_objects(s, ["obj_0", "obj_1"]) == left


def test_deleting_a_namespace_logs_all_its_vectors_out(engine: Any) -> None:
    def remove(s: Session) -> None:
        ns = s.get(Namespace, NS_ID)
        assert ns is not None
        NamespaceRepository(s).delete(ns)

    gone, left = _removed_in_one_transaction(engine, remove)
    assert len(gone) == 12 and left == set()
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Document)) == 0


# ------------------------------------------------------------------------- schema


def _triggers(s: Session) -> set[str]:
    if s.get_bind().dialect.name == "sqlite":
        rows = s.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
    else:
        rows = s.execute(text("SELECT DISTINCT trigger_name FROM information_schema.triggers"))
    return {r[0] for r in rows}


def test_no_trigger_writes_the_vector_log_after_migration(engine: Any, settings: Settings) -> None:
    logging = {"document_vectors_logged_insert", "document_vectors_logged_delete"}
    with Session(engine) as s:
        found = _triggers(s)
        sqlite = s.get_bind().dialect.name == "sqlite"
    assert not found & logging
    if not sqlite:
        return
    assert found == {"documents_text_delete"}  # FTS5's removal trigger stays (0014)
    from alembic import command

    command.downgrade(alembic_config(settings.database_url), "0009")
    with Session(engine) as s:
        assert _triggers(s) >= logging
    command.upgrade(alembic_config(settings.database_url), "head")
    with Session(engine) as s:
        assert _triggers(s) == {"documents_text_delete"}


# ------------------------------------------------------------------------- over HTTP

NS = {"X-Namespace": "layer"}
TEXT_REF = {"feature_extractor_name": "text_extractor", "version": "v1"}


class _Sloppy(Extractor):
    """text_extractor's contract with made-up vectors: objects marked `short` get 10-d ones."""

    spec = TEXT
    reads = frozenset({"text"})

    def extract(self, obj: ObjectInput, params: dict[str, Any]) -> list[DocumentDraft]:
        dims = 10 if obj.metadata.get("short") else TEXT_DIM
        return [
            DocumentDraft(b.blob_id, b.property, {"text": "x"}, features={TEXT_URI: [0.5] * dims})
            for b in obj.blobs
        ]


async def _namespace(c: httpx.AsyncClient) -> None:
    r = await c.post(
        "/v1/namespaces", json={"namespace_name": "layer", "feature_extractors": [TEXT_REF]}
    )
    assert r.status_code == 200, r.text
    schema = {"properties": {"body": {"type": "text"}}}
    r = await c.post("/v1/buckets", headers=NS, json={"bucket_name": "n", "bucket_schema": schema})
    assert r.status_code == 200, r.text


async def _object(c: httpx.AsyncClient, body: str, **metadata: Any) -> str:
    payload = {
        "metadata": metadata,
        "blobs": [{"property": "body", "type": "text", "content": body}],
    }
    r = await c.post("/v1/buckets/n/objects", headers=NS, json=payload)
    assert r.status_code == 200, r.text
    return str(r.json()["object_id"])


async def _batch(
    c: httpx.AsyncClient, ids: list[str], registry: ExtractorRegistry | None = None
) -> dict[str, Any]:
    r = await c.post("/v1/buckets/n/batches", headers=NS, json={"object_ids": ids})
    batch_id = r.json()["batch_id"]
    r = await c.post(f"/v1/buckets/n/batches/{batch_id}/submit", headers=NS)
    assert r.status_code == 200, r.text
    ctx = c._transport.app.state.ctx  # type: ignore[attr-defined]
    body = BatchExtraction(ctx.db, ctx.keeper, registry or ctx.registry)
    await LocalWorkers(ctx.db, {JOB_KIND: body}).run_until_idle()
    return dict((await c.get(f"/v1/buckets/n/batches/{batch_id}", headers=NS)).json())


async def _search(c: httpx.AsyncClient, query: str) -> list[str]:
    search = {"feature_uri": TEXT_URI, "query": query, "top_k": 10}
    stage = {
        "stage_name": "semantic",
        "config": {"stage_id": "feature_search", "parameters": {"searches": [search]}},
    }
    body = {"collection_identifiers": ["text_extractor"], "stages": [stage], "inputs": {}}
    r = await c.post("/v1/retrievers/execute", headers=NS, json=body)
    assert r.status_code == 200, r.text
    return [hit["source"]["object_id"] for hit in r.json()["results"]]


async def test_a_bad_vector_fails_its_object_and_the_batch_goes_on(
    client: httpx.AsyncClient,
) -> None:
    await _namespace(client)
    good = await _object(client, "fine")
    short = await _object(client, "too short", short=True)
    registry = ExtractorRegistry(implementations=[_Sloppy()])
    batch = await _batch(client, [good, short], registry)
    assert batch["status"] == "COMPLETED" and batch["progress"]["failed"] == 1, batch
    assert batch["error_summary"] == {"InvalidVector": 1}
    r = await client.get(f"/v1/buckets/n/batches/{batch['batch_id']}/failures", headers=NS)
    (failure,) = r.json()["results"]
    assert failure["object_id"] == short and "384-d" in failure["message"], failure
    r = await client.get(f"/v1/objects/{short}/documents", headers=NS)
    assert r.status_code == 200 and r.json() == []
    r = await client.get(f"/v1/objects/{good}/documents?include_vectors=true", headers=NS)
    (doc,) = r.json()
    assert len(doc["features"][TEXT_URI]) == TEXT_DIM and doc["content"] == {"text": "x"}


async def test_search_follows_batches_and_object_deletes(client: httpx.AsyncClient) -> None:
    await _namespace(client)
    volcano = await _object(client, "Lava poured from the erupting volcano over the villages.")
    bread = await _object(client, "Knead the dough and bake the bread until it is golden.")
    assert (await _batch(client, [volcano, bread]))["status"] == "COMPLETED"
    assert (await _search(client, "a volcanic eruption"))[0] == volcano  # the index opens

    # A later batch reaches the open index through the log's `+` rows...
    galaxy = await _object(client, "The telescope captured a distant spiral galaxy.")
    assert (await _batch(client, [galaxy]))["status"] == "COMPLETED"
    assert (await _search(client, "stars and galaxies in the night sky"))[0] == galaxy

    # ...and a deleted object leaves it through the `-` rows logged before the cascade.
    r = await client.delete(f"/v1/buckets/n/objects/{volcano}", headers=NS)
    assert r.status_code == 204, r.text
    found = await _search(client, "a volcanic eruption")
    assert volcano not in found and set(found) == {bread, galaxy}


def test_a_chunk_never_writes_into_a_collection_deleted_while_it_ran(engine: Any) -> None:
    """A batch chunk extracted for two collections; one is deleted before the chunk is
    stored: its documents are dropped, the other collection's are written."""
    from assay.batches.tasks import _drop_deleted_targets, _Outcome

    text_rows = {"obj_0": prepare(TEXT_TARGET, NS_ID, "obj_0", drafts(2, 1))}
    clip_rows = {"obj_0": prepare(CLIP_TARGET, NS_ID, "obj_0", [])}
    outcome = _Outcome({TEXT_TARGET: text_rows, CLIP_TARGET: clip_rows}, ["obj_0"], {})
    with Session(engine) as s, s.begin():
        repo = CollectionRepository(s, NS_ID)
        gone = repo.get(TEXT_TARGET.collection_id)
        assert gone is not None
        repo.delete(gone)
    with Session(engine) as s, s.begin():
        _drop_deleted_targets(s, outcome)
        assert list(outcome.docs) == [CLIP_TARGET]
