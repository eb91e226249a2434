"""Retrievers over HTTP on real MiniLM vectors: saved and ad-hoc pipelines, every stage,
templates, pagination, stage stats, and the errors users meet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from assay.batches.service import JOB_KIND
from assay.batches.tasks import BatchExtraction
from assay.config import Settings
from assay.engine.local import LocalWorkers
from tests.conftest import ADMIN_KEY, Origin, open_client, png_bytes

NS = {"X-Namespace": "search"}
TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
URI = "assay://text_extractor@v1/text_embedding"
CORPUS = {
    "volcano": "Lava poured from the erupting volcano and ash covered the nearby villages.",
    "baking": "Knead the dough, let it rise overnight, then bake the bread until golden.",
    "football": "The striker scored twice in the final minutes and the stadium erupted.",
    "finance": "The central bank raised interest rates to slow down rising inflation.",
    "astronomy": "The telescope captured a distant galaxy and its spiral arms of stars.",
    "gardening": "Water the tomato plants every morning and prune the lower leaves.",
}


@pytest.fixture
def settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, workers=0)


async def _drain(c: httpx.AsyncClient) -> None:
    ctx = c._transport.app.state.ctx  # type: ignore[attr-defined]
    workers = {JOB_KIND: BatchExtraction(ctx.db, ctx.keeper, ctx.registry)}
    await LocalWorkers(ctx.db, workers).run_until_idle()


async def _corpus(c: httpx.AsyncClient, ns: str = "search") -> dict[str, str]:
    """Namespace with text_extractor, one object per topic, processed: topic → object id."""
    r = await c.post("/v1/namespaces", json={"namespace_name": ns, "feature_extractors": [TEXT]})
    assert r.status_code == 200, r.text
    headers = {"X-Namespace": ns}
    schema = {"properties": {"body": {"type": "text"}}}
    r = await c.post(
        "/v1/buckets", headers=headers, json={"bucket_name": "notes", "bucket_schema": schema}
    )
    assert r.status_code == 200, r.text
    ids: dict[str, str] = {}
    for i, (topic, text) in enumerate(CORPUS.items()):
        body = {
            "metadata": {"topic": topic, "rank": i, "even": i % 2 == 0},
            "blobs": [{"property": "body", "type": "text", "content": text}],
        }
        r = await c.post("/v1/buckets/notes/objects", headers=headers, json=body)
        assert r.status_code == 200, r.text
        ids[topic] = r.json()["object_id"]
    batch = (
        await c.post(
            "/v1/buckets/notes/batches", headers=headers, json={"object_ids": list(ids.values())}
        )
    ).json()
    await c.post(f"/v1/buckets/notes/batches/{batch['batch_id']}/submit", headers=headers)
    await _drain(c)
    return ids


def _search_stage(**extra: Any) -> dict[str, Any]:
    search = {"feature_uri": URI, "query": "{{INPUT.query}}", "top_k": 10, **extra}
    return {
        "stage_name": "semantic",
        "config": {
            "stage_id": "feature_search",
            "parameters": {"searches": [search], "final_top_k": 10},
        },
    }


async def _adhoc(c: httpx.AsyncClient, stages: list[dict[str, Any]], **body: Any) -> httpx.Response:
    payload = {"collection_identifiers": ["text_extractor"], "stages": stages, **body}
    return await c.post("/v1/retrievers/execute", headers=NS, json=payload)


def _topics(answer: dict[str, Any]) -> list[str]:
    return [r["metadata"]["topic"] for r in answer["results"]]


async def test_saved_retriever_finds_paraphrases_and_reports_stage_stats(
    client: httpx.AsyncClient,
) -> None:
    await _corpus(client)
    body = {
        "retriever_name": "notes-search",
        "collection_identifiers": ["text_extractor"],
        "input_schema": {"query": {"type": "text", "required": True}},
        "stages": [
            _search_stage(),
            {"stage_name": "top", "config": {"stage_id": "limit", "parameters": {"limit": 3}}},
        ],
    }
    r = await client.post("/v1/retrievers", headers=NS, json=body)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["retriever"]["retriever_id"] == created["retriever_id"]
    rid = created["retriever_id"]

    queries = {
        "molten rock from a mountain eruption": "volcano",
        "how to make a loaf at home": "baking",
        "a soccer match and a goal": "football",
        "monetary policy and prices": "finance",
        "observing stars and galaxies in space": "astronomy",
        "caring for vegetables in the yard": "gardening",
    }
    for query, topic in queries.items():
        r = await client.post(
            f"/v1/retrievers/{rid}/execute", headers=NS, json={"inputs": {"query": query}}
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert _topics(answer)[0] == topic, (query, _topics(answer))
        assert len(answer["results"]) == 3
        scores = [x["score"] for x in answer["results"]]
        assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1.0001
        first = answer["results"][0]
        assert first["source"]["object_id"] and first["content"]["text"] == CORPUS[topic]
        stats = answer["stage_stats"]
        assert [(s["stage_name"], s["input_count"], s["output_count"]) for s in stats] == [
            ("semantic", 0, 6),
            ("top", 6, 3),
        ]
        assert all(s["duration_ms"] >= 0 for s in stats)

    # by name too; list, get, delete
    assert (await client.get("/v1/retrievers/notes-search", headers=NS)).json()[
        "retriever_id"
    ] == rid
    listed = (await client.get("/v1/retrievers", headers=NS)).json()["results"]
    assert [x["retriever_id"] for x in listed] == [rid]
    assert (await client.post("/v1/retrievers", headers=NS, json=body)).status_code == 409
    assert (await client.delete(f"/v1/retrievers/{rid}", headers=NS)).status_code == 200
    assert (await client.get(f"/v1/retrievers/{rid}", headers=NS)).status_code == 404


async def test_text_search_filters_grouping_sorting_and_pages(client: httpx.AsyncClient) -> None:
    await _corpus(client)
    text_stage = {
        "stage_name": "words",
        "config": {"stage_id": "text_search", "parameters": {"query": "{{INPUT.query}}"}},
    }
    r = await _adhoc(client, [text_stage], inputs={"query": "bread dough"})
    assert r.status_code == 200, r.text
    assert _topics(r.json()) == ["baking"]

    # a filter from the inputs applies to every search
    filt = {"AND": [{"field": "metadata.even", "operator": "eq", "value": True}]}
    r = await _adhoc(
        client, [_search_stage()], inputs={"query": "space telescope", "filters": filt}
    )
    topics = _topics(r.json())
    assert set(topics) == {"volcano", "football", "astronomy"} and topics[0] == "astronomy"

    # attribute_filter + sort_attribute + limit, without any search
    stages = [
        {
            "stage_name": "f",
            "config": {
                "stage_id": "attribute_filter",
                "parameters": {"field": "metadata.rank", "operator": "gte", "value": 2},
            },
        },
        {
            "stage_name": "s",
            "config": {
                "stage_id": "sort_attribute",
                "parameters": {"field": "metadata.rank", "direction": "asc"},
            },
        },
    ]
    r = await _adhoc(client, stages, inputs={})
    assert _topics(r.json()) == ["football", "finance", "astronomy", "gardening"]

    # group_by object: one hit per object even when fusion of two searches returns chunks twice
    fused = _search_stage()
    fused["config"]["parameters"]["searches"].append(
        {"feature_uri": URI, "query": "stars", "top_k": 10}
    )
    group = {
        "stage_name": "g",
        "config": {"stage_id": "group_by", "parameters": {"field": "source.object_id"}},
    }
    r = await _adhoc(client, [fused, group], inputs={"query": "galaxy"})
    objs = [x["source"]["object_id"] for x in r.json()["results"]]
    assert len(objs) == len(set(objs)) == 6 and _topics(r.json())[0] == "astronomy"

    # pages: 6 results, 4 then 2, disjoint, same order as one page of 6
    whole = _topics(
        (await _adhoc(client, [_search_stage()], inputs={"query": "nature"}, limit=6)).json()
    )
    p1 = (await _adhoc(client, [_search_stage()], inputs={"query": "nature"}, limit=4)).json()
    assert p1["pagination"]["total_count"] == 6 and p1["pagination"]["next_cursor"]
    p2 = (
        await _adhoc(
            client,
            [_search_stage()],
            inputs={"query": "nature"},
            limit=4,
            cursor=p1["pagination"]["next_cursor"],
        )
    ).json()
    assert _topics(p1) + _topics(p2) == whole and p2["pagination"]["next_cursor"] is None


async def test_rerank_mmr_and_rrf_fusion(client: httpx.AsyncClient) -> None:
    await _corpus(client)
    plain = _topics((await _adhoc(client, [_search_stage()], inputs={"query": "eruption"})).json())

    def mmr(lam: float) -> dict[str, Any]:
        params = {"method": "mmr", "feature_uri": URI, "lambda": lam}
        return {"stage_name": "diverse", "config": {"stage_id": "rerank", "parameters": params}}

    r = await _adhoc(client, [_search_stage(), mmr(1.0)], inputs={"query": "eruption"})
    assert r.status_code == 200, r.text
    assert _topics(r.json()) == plain  # all relevance: the search's own order
    # all diversity: after the best hit comes the document least like it
    docs = (
        await client.get(
            "/v1/collections/text_extractor/documents?include_vectors=true", headers=NS
        )
    ).json()["results"]
    vec = {d["metadata"]["topic"]: np.asarray(d["features"][URI]) for d in docs}
    unlike_first = min((t for t in vec if t != plain[0]), key=lambda t: vec[t] @ vec[plain[0]])
    diverse = _topics(
        (await _adhoc(client, [_search_stage(), mmr(0.0)], inputs={"query": "eruption"})).json()
    )
    assert (
        diverse[0] == plain[0] and diverse[1] == unlike_first and sorted(diverse) == sorted(plain)
    )

    hybrid = {
        "stage_name": "hybrid",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [
                    {
                        "feature_uri": URI.replace("assay://", "mixpeek://"),
                        "query": {"input_mode": "text", "text": "{{INPUT.query}}"},
                        "top_k": 1,
                    },
                    {"feature_uri": URI, "query": "interest rates", "top_k": 1, "weight": 2},
                ],
                "fusion": "rrf",
                "final_top_k": 4,
            },
        },
    }
    r = await _adhoc(client, [hybrid], inputs={"query": "bread"})
    assert r.status_code == 200, r.text
    assert _topics(r.json()) == ["finance", "baking"]  # each search's best; the weight orders them


async def test_deleted_objects_leave_the_results(client: httpx.AsyncClient) -> None:
    ids = await _corpus(client)
    r = await _adhoc(client, [_search_stage()], inputs={"query": "volcanic lava"})
    assert _topics(r.json())[0] == "volcano"
    r = await client.delete(f"/v1/buckets/notes/objects/{ids['volcano']}", headers=NS)
    assert r.status_code in (200, 204), r.text
    r = await _adhoc(client, [_search_stage()], inputs={"query": "volcanic lava"})
    assert "volcano" not in _topics(r.json()) and len(r.json()["results"]) == 5
    r = await _adhoc(
        client,
        [
            {
                "stage_name": "t",
                "config": {"stage_id": "text_search", "parameters": {"query": "lava"}},
            }
        ],
        inputs={},
    )
    assert r.json()["results"] == []


async def test_deleting_collections_and_namespaces_removes_their_index_files(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await _corpus(client)
    await _adhoc(client, [_search_stage()], inputs={"query": "lava"})  # builds the index
    found = _indexed_collections(settings)
    assert len(found) == 1, found
    (col,) = found
    r = await client.delete(f"/v1/collections/{col}", headers=NS)
    assert r.status_code == 200, r.text
    assert col not in _indexed_collections(settings)
    await _corpus(client, ns="second")
    second = {"X-Namespace": "second"}
    body = {"collection_identifiers": [], "stages": [_search_stage()], "inputs": {"query": "x"}}
    assert (
        await client.post("/v1/retrievers/execute", headers=second, json=body)
    ).status_code == 200
    assert _indexed_collections(settings)
    assert (await client.delete("/v1/namespaces/second")).status_code == 200
    assert not _indexed_collections(settings)


def _indexed_collections(settings: Settings) -> set[str]:
    """Collections with a vector index: folders of index files, or pgvector HNSW indexes."""
    if settings.is_sqlite:
        root = settings.data_dir / "indexes"
        return {p.name for p in root.iterdir() if p.is_dir()} if root.exists() else set()
    from sqlalchemy import create_engine, text

    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            names = conn.scalars(
                text("SELECT indexname FROM pg_indexes WHERE starts_with(indexname, 'ix_vec_')")
            ).all()
    finally:
        engine.dispose()
    return {n.removeprefix("ix_vec_").rsplit("_", 1)[0] for n in names}


async def test_bad_definitions_and_other_tenants(client: httpx.AsyncClient) -> None:
    await _corpus(client)
    r = await _adhoc(
        client,
        [{"stage_name": "x", "config": {"stage_id": "teleport", "parameters": {}}}],
        inputs={},
    )
    assert r.status_code == 422 and "feature_search" in r.json()["error"]["message"]
    r = await client.post(
        "/v1/retrievers/execute",
        headers=NS,
        json={
            "collection_identifiers": ["nope"],
            "stages": [_search_stage()],
            "inputs": {"query": "x"},
        },
    )
    assert r.status_code == 422 and r.json()["error"]["details"]["validation_errors"][0]["loc"][
        -2:
    ] == ["collection_identifiers", 0]
    bad = _search_stage(top_k="many")
    r = await _adhoc(client, [bad], inputs={"query": "x"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["validation_errors"][0]["loc"][:4] == [
        "stages",
        0,
        "config",
        "parameters",
    ]
    r = await _adhoc(
        client,
        [_search_stage(feature_uri="assay://image_extractor@v1/visual_embedding")],
        inputs={"query": "x"},
    )
    assert r.status_code == 200 and r.json()["results"] == []  # no collection holds that feature
    r = await _adhoc(client, [_search_stage()], inputs={"query": "x"}, cursor="garbage")
    assert r.status_code == 422
    r = await _adhoc(client, [_search_stage()], inputs={"query_image": "not base64!"})
    assert r.status_code == 422

    # another tenant sees neither the collection nor the retriever
    await client.post(
        "/v1/namespaces", json={"namespace_name": "other", "feature_extractors": [TEXT]}
    )
    other = {"X-Namespace": "other"}
    saved = await client.post(
        "/v1/retrievers", headers=NS, json={"retriever_name": "mine", "stages": [_search_stage()]}
    )
    assert saved.status_code == 200
    rid = saved.json()["retriever_id"]
    assert (await client.get(f"/v1/retrievers/{rid}", headers=other)).status_code == 404
    assert (
        await client.post(
            f"/v1/retrievers/{rid}/execute", headers=other, json={"inputs": {"query": "x"}}
        )
    ).status_code == 404
    r = await client.post(
        "/v1/retrievers/execute",
        headers=other,
        json={
            "collection_identifiers": [],
            "stages": [_search_stage()],
            "inputs": {"query": "volcano"},
        },
    )
    assert r.status_code == 200 and r.json()["results"] == []


async def test_stage_catalogue(client: httpx.AsyncClient) -> None:
    await client.post(
        "/v1/namespaces", json={"namespace_name": "search", "feature_extractors": [TEXT]}
    )
    stages = (await client.get("/v1/retrievers/stages", headers=NS)).json()
    ids = {s["stage_id"] for s in stages}
    assert {
        "feature_search",
        "text_search",
        "attribute_filter",
        "sort_attribute",
        "rerank",
        "group_by",
        "limit",
    } <= ids
    assert "deduplicate" in next(s for s in stages if s["stage_id"] == "group_by")["aliases"]


async def test_precomputed_vector_queries(client: httpx.AsyncClient) -> None:
    await _corpus(client)
    docs = (
        await client.get(
            "/v1/collections/text_extractor/documents?include_vectors=true", headers=NS
        )
    ).json()["results"]
    target = next(d for d in docs if d["metadata"]["topic"] == "finance")
    vector = target["features"][URI]
    stage = _search_stage(query="{{INPUT.embedding}}")
    r = await _adhoc(client, [stage], inputs={"embedding": vector})
    assert r.status_code == 200, r.text
    first = r.json()["results"][0]
    assert first["document_id"] == target["document_id"] and first["score"] > 0.999
    spec = _search_stage(query={"input_mode": "vector", "vector": vector[:10]})
    r = await _adhoc(client, [spec], inputs={})
    assert r.status_code == 422 and "384" in r.json()["error"]["message"], r.text


async def test_query_url_goes_through_the_ssrf_guard(
    client: httpx.AsyncClient, origin: Origin, tmp_path: Path, another_database: Any
) -> None:
    await _corpus(client)
    url = origin.serve("/q.png", png_bytes("LAVA", (160, 64)), "image/png")
    stage = _search_stage(query="{{INPUT.query_url}}")
    r = await _adhoc(client, [stage], inputs={"query_url": url})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["validation_errors"][0]["loc"] == ["inputs", "query_url"]
    assert origin.hits == []  # refused before any connection

    data_dir = tmp_path / "private"
    settings = Settings(
        data_dir=data_dir,
        admin_key=ADMIN_KEY,
        allow_private_urls=True,
        database_url=another_database(),
    )
    async with open_client(settings) as private:
        await _corpus(private)
        body = {"stages": [stage], "inputs": {"query_url": url}}
        r = await private.post("/v1/retrievers/execute", headers=NS, json=body)
        assert r.status_code == 200, r.text
        assert origin.hits == ["/q.png"] and len(r.json()["results"]) == 6
