"""The search routes' direct handlers answer every request as FastAPI's path does.

As `test_ingest_direct.py` for registration: a body declared `application/json` takes the
direct handler (`kit/routing.DirectJsonRoute`), the same body declared `application/json;
charset=utf-8` takes FastAPI's dependency solving, and both must get the same answer.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from assay.batches.service import JOB_KIND
from assay.batches.tasks import BatchExtraction
from assay.config import Settings
from assay.documents.vectors import unpack_vector
from assay.engine.local import LocalWorkers
from assay.models import Document, DocumentVector
from tests.conftest import ADMIN_KEY
from tests.direct_routes import DIRECT, STANDARD, assert_answered_alike, direct_paths, send

NS = "direct-search"
TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
URI = "assay://text_extractor@v1/text_embedding"
ADHOC = "/v1/retrievers/execute"
SAVED = "/v1/retrievers/words/execute"
_IDS = re.compile(r"\b(exec|obj|ret|col|doc|req)_[0-9A-Za-z]{20}\b")
_MS = re.compile(r'"duration_ms":[0-9.e+-]+')
_SEARCH = {"feature_uri": URI, "query": "{{INPUT.query}}", "top_k": 5}
STAGES = [
    {
        "stage_name": "semantic",
        "config": {"stage_id": "feature_search", "parameters": {"searches": [_SEARCH]}},
    }
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """No background workers: the fixture runs the batch's jobs itself, to the end."""
    return Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, workers=0)


@pytest.fixture
async def c(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A namespace with a processed text bucket and a saved retriever named `words`."""
    h = {"X-Namespace": NS}
    r = await client.post(
        "/v1/namespaces", json={"namespace_name": NS, "feature_extractors": [TEXT]}
    )
    assert r.status_code == 200, r.text
    schema = {"properties": {"body": {"type": "text"}}}
    r = await client.post(
        "/v1/buckets", headers=h, json={"bucket_name": "n", "bucket_schema": schema}
    )
    assert r.status_code == 200, r.text
    ids = []
    for text in ("ash fell on the village", "bread rises overnight", "a goal in the final"):
        blob = {"property": "body", "type": "text", "content": text}
        r = await client.post("/v1/buckets/n/objects", headers=h, json={"blobs": [blob]})
        ids.append(r.json()["object_id"])
    r = await client.post("/v1/buckets/n/batches", headers=h, json={"object_ids": ids})
    await client.post(f"/v1/buckets/n/batches/{r.json()['batch_id']}/submit", headers=h)
    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    await LocalWorkers(
        ctx.db, {JOB_KIND: BatchExtraction(ctx.db, ctx.keeper, ctx.registry)}
    ).run_until_idle()
    saved = {
        "retriever_name": "words",
        "collection_identifiers": ["text_extractor"],
        "input_schema": {"query": {"type": "text", "required": True}},
        "stages": STAGES,
    }
    r = await client.post("/v1/retrievers", headers=h, json=saved)
    assert r.status_code == 200, r.text
    return client


QUERY = {"inputs": {"query": "volcano"}}
INLINE = {"collection_identifiers": ["text_extractor"], "stages": STAGES, **QUERY}
CASES: list[tuple[str, str, bytes | dict[str, Any] | list[Any] | None, dict[str, str]]] = [
    ("saved", SAVED, QUERY, {}),
    ("saved by id-like name", "/v1/retrievers/ret_nope/execute", QUERY, {}),
    ("saved page", SAVED, {**QUERY, "limit": 1}, {}),
    ("saved hosted pagination", SAVED, {**QUERY, "pagination": {"page_size": 2}}, {}),
    ("saved bad cursor", SAVED, {**QUERY, "cursor": "nope"}, {}),
    ("saved hosted-only field warns", SAVED, {**QUERY, "explain": True}, {}),
    ("saved unimplemented field", SAVED, {**QUERY, "stream": True}, {}),
    ("saved unknown field", SAVED, {**QUERY, "colour": 1}, {}),
    ("saved missing input", SAVED, {"inputs": {}}, {}),
    ("saved wrong type", SAVED, {"inputs": {"query": 3}}, {}),
    ("saved limit out of range", SAVED, {**QUERY, "limit": 0}, {}),
    ("saved embedding", SAVED, {"inputs": {"query": "x", "embedding": [0.1] * 384}}, {}),
    ("saved a list", SAVED, [QUERY], {}),
    ("saved null", SAVED, b"null", {}),
    ("saved not JSON", SAVED, b"{nope", {}),
    ("saved NaN", SAVED, b'{"inputs": {"embedding": [NaN]}}', {}),
    ("saved no key", SAVED, QUERY, {"Authorization": ""}),
    ("saved bad key", SAVED, QUERY, {"Authorization": "Bearer sk_live_nope_0123456789abcdef"}),
    ("saved no namespace", SAVED, QUERY, {"X-Namespace": ""}),
    ("saved unknown namespace", SAVED, QUERY, {"X-Namespace": "nope"}),
    ("saved bad body and no key", SAVED, {"colour": 1}, {"Authorization": ""}),
    ("unknown retriever", "/v1/retrievers/nope/execute", QUERY, {}),
    ("inline", ADHOC, INLINE, {}),
    ("inline page", ADHOC, {**INLINE, "limit": 2}, {}),
    ("inline unknown collection", ADHOC, {**INLINE, "collection_identifiers": ["nope"]}, {}),
    ("inline unknown stage", ADHOC, {**INLINE, "stages": [{"stage_name": "x"}]}, {}),
    ("inline no stages", ADHOC, {**QUERY, "stages": []}, {}),
    ("inline unknown field", ADHOC, {**INLINE, "colour": 1}, {}),
    ("inline no namespace", ADHOC, INLINE, {"X-Namespace": ""}),
    ("inline not JSON", ADHOC, b"[", {}),
]


def _comparable(r: httpx.Response) -> tuple[int, str]:
    """Status and body with the generated ids and the timings masked."""
    return r.status_code, _MS.sub('"duration_ms":0', _IDS.sub(r"\1_<id>", r.text))


@pytest.mark.parametrize(("name", "path", "body", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_direct_and_standard_paths_answer_alike(
    c: httpx.AsyncClient, name: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    await assert_answered_alike(c, NS, path, body, headers, _comparable)


async def test_a_saved_search_finds_the_closest_text(c: httpx.AsyncClient) -> None:
    r = await send(c, NS, SAVED, {"inputs": {"query": "an eruption"}}, {}, DIRECT)
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["results"], r.text
    assert found["results"][0]["content"]["text"] == "ash fell on the village"
    assert found["documents"] == found["results"] and len(found["results"]) == 3


async def test_json_bodies_take_the_direct_handler(
    c: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    validated = direct_paths(monkeypatch)
    for content_type in (DIRECT, STANDARD):
        r = await send(c, NS, SAVED, QUERY, {}, content_type)
        assert r.status_code == 200, r.text
        r = await send(c, NS, ADHOC, INLINE, {}, content_type)
        assert r.status_code == 200, r.text
    assert validated == ["/v1/retrievers/{retriever_identifier}/execute", "/v1/retrievers/execute"]


async def test_a_run_needing_nothing_long_is_answered_on_the_event_loop(
    c: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, database_backend: str
) -> None:
    # `retrievers/inline.py`: on SQLite a precomputed vector searched in an open index is run
    # on the loop; a query model, a filter over the corpus or an index still to open send the
    # run to a thread, and it is answered the same either way. A database server: a thread.
    ctx = c._transport.app.state.ctx  # type: ignore[attr-defined]
    rows = ctx.db.read_sync(
        lambda s: s.execute(select(Document.content, DocumentVector.vector).join(
            DocumentVector, DocumentVector.doc_key == Document.doc_key)).all()
    )  # fmt: skip
    content, blob = next(r for r in rows if r.content["text"] == "bread rises overnight")
    vector = [round(float(x), 6) for x in unpack_vector(blob)]
    runs: list[bool] = []  # each run's `inline`, in order
    read = ctx.db.read

    async def recorded(fn: Any, *, heavy: bool = False) -> Any:
        if isinstance(fn, partial) and "inline" in fn.keywords:
            runs.append(fn.keywords["inline"])
        return await read(fn, heavy=heavy)

    monkeypatch.setattr(ctx.db, "read", recorded)

    async def search(query: Any, filters: dict[str, Any] | None = None) -> list[str]:
        runs.clear()
        found = {"feature_uri": URI, "query": query, "top_k": 3, "filters": filters}
        stage = {"stage_name": "s", "config": {"stage_id": "feature_search",
                 "parameters": {"searches": [found]}}}  # fmt: skip
        body = {"collection_identifiers": ["text_extractor"], "stages": [stage]}
        r = await send(c, NS, ADHOC, body, {}, DIRECT)
        assert r.status_code == 200, r.text
        return [hit["content"]["text"] for hit in r.json()["results"]]

    inline, thread = ([True], [True, False]) if database_backend == "sqlite" else ([False],) * 2
    first = await search(vector)  # the index opens: in a thread
    assert runs == thread and first[0] == content["text"] and len(first) == 3
    assert await search(vector) == first and runs == inline
    assert (await search("bread"))[0] == first[0] and runs == thread  # MiniLM embeds it
    only = {"AND": [{"field": "document_id", "operator": "ne", "value": "none"}]}
    assert await search(vector, only) == first and runs == thread
