"""Collections: defaults per namespace extractor, user collections over chosen buckets,
documents with lineage, and what an object became."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from assay.batches.service import JOB_KIND
from assay.batches.tasks import BatchExtraction
from assay.config import Settings
from assay.engine.local import LocalWorkers
from tests.conftest import ADMIN_KEY, b64

NS = {"X-Namespace": "docs"}
SCHEMA = {"properties": {"body": {"type": "text", "required": True}}}
PASSTHROUGH = {"feature_extractor_name": "passthrough_extractor", "version": "v1"}


@pytest.fixture
def settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, workers=0)


async def _setup(c: httpx.AsyncClient) -> None:
    r = await c.post(
        "/v1/namespaces", json={"namespace_name": "docs", "feature_extractors": [PASSTHROUGH]}
    )
    assert r.status_code == 200 and r.json()["collection_count"] == 1, r.text
    for name in ("a", "b"):
        r = await c.post(
            "/v1/buckets", headers=NS, json={"bucket_name": name, "bucket_schema": SCHEMA}
        )
        assert r.status_code == 200


async def _object(c: httpx.AsyncClient, bucket: str, text: str) -> str:
    body = {
        "metadata": {"lang": "en"},
        "blobs": [{"property": "body", "type": "text", "content": text}],
    }
    r = await c.post(f"/v1/buckets/{bucket}/objects", headers=NS, json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["object_id"])


async def _process(c: httpx.AsyncClient, bucket: str, ids: list[str]) -> dict[str, Any]:
    batch = (
        await c.post(f"/v1/buckets/{bucket}/batches", headers=NS, json={"object_ids": ids})
    ).json()
    await c.post(f"/v1/buckets/{bucket}/batches/{batch['batch_id']}/submit", headers=NS)
    ctx = c._transport.app.state.ctx  # type: ignore[attr-defined]
    await LocalWorkers(
        ctx.db, {JOB_KIND: BatchExtraction(ctx.db, ctx.keeper, ctx.registry)}
    ).run_until_idle()
    return dict(
        (await c.get(f"/v1/buckets/{bucket}/batches/{batch['batch_id']}", headers=NS)).json()
    )


async def test_default_and_user_collections_fill_from_their_buckets(
    client: httpx.AsyncClient,
) -> None:
    await _setup(client)
    listed = (await client.get("/v1/collections", headers=NS)).json()["results"]
    assert [(c["collection_name"], c["is_default"]) for c in listed] == [
        ("passthrough_extractor", True)
    ]
    default_id = listed[0]["collection_id"]

    body = {
        "collection_name": "only-b",
        "source": {"type": "bucket", "bucket_ids": ["b"]},
        "feature_extractor": PASSTHROUGH,
    }
    r = await client.post("/v1/collections", headers=NS, json=body)
    assert r.status_code == 200 and r.json()["source"]["bucket_ids"][0].startswith("bkt_")
    only_b = r.json()["collection_id"]
    assert (await client.post("/v1/collections", headers=NS, json=body)).status_code == 409

    in_a = await _object(client, "a", "alpha")
    in_b = await _object(client, "b", "beta")
    batch_a = await _process(client, "a", [in_a])
    batch_b = await _process(client, "b", [in_b])
    assert batch_a["collections"] == [default_id]
    assert sorted(batch_b["collections"]) == sorted([default_id, only_b])

    docs = (await client.get(f"/v1/collections/{only_b}/documents", headers=NS)).json()["results"]
    assert [d["source"]["object_id"] for d in docs] == [in_b]
    assert docs[0]["content"] == {"text": "beta"} and docs[0]["metadata"]["lang"] == "en"
    assert docs[0]["features"] is None
    one = await client.get(
        f"/v1/collections/only-b/documents/{docs[0]['document_id']}",
        headers=NS,
        params={"include_vectors": "true"},
    )
    assert one.status_code == 200 and one.json()["features"] == {}

    lineage = (await client.get(f"/v1/objects/{in_b}/documents", headers=NS)).json()
    assert sorted(d["collection_id"] for d in lineage) == sorted([default_id, only_b])
    got = (await client.get("/v1/collections/passthrough_extractor", headers=NS)).json()
    assert got["document_count"] == 2

    r = await client.delete(f"/v1/collections/{only_b}", headers=NS)
    assert r.status_code == 200
    lineage = (await client.get(f"/v1/objects/{in_b}/documents", headers=NS)).json()
    assert [d["collection_id"] for d in lineage] == [default_id]
    await client.delete(f"/v1/buckets/b/objects/{in_b}", headers=NS)
    assert (await client.get(f"/v1/objects/{in_b}/documents", headers=NS)).status_code == 404


async def test_bad_collections_and_other_tenants(client: httpx.AsyncClient) -> None:
    await _setup(client)
    bad_bucket = {
        "collection_name": "x",
        "source": {"bucket_ids": ["nope"]},
        "feature_extractor": PASSTHROUGH,
    }
    r = await client.post("/v1/collections", headers=NS, json=bad_bucket)
    assert r.status_code == 422 and r.json()["error"]["details"]["validation_errors"][0]["loc"] == [
        "source",
        "bucket_ids",
        0,
    ]
    bad_extractor = {**bad_bucket, "source": {"bucket_ids": ["a"]}}
    bad_extractor["feature_extractor"] = {"feature_extractor_name": "nope", "version": "v1"}
    r = await client.post("/v1/collections", headers=NS, json=bad_extractor)
    assert r.status_code == 422 and "passthrough_extractor@v1" in r.json()["error"]["message"]

    await client.post("/v1/namespaces", json={"namespace_name": "other", "feature_extractors": []})
    obj = await _object(client, "a", "secret")
    other = {"X-Namespace": "other"}
    assert (await client.get(f"/v1/objects/{obj}/documents", headers=other)).status_code == 404
    assert (
        await client.get("/v1/collections/passthrough_extractor", headers=other)
    ).status_code == 404


async def test_text_extractor_documents_carry_minilm_vectors(client: httpx.AsyncClient) -> None:
    extractor = {"feature_extractor_name": "text_extractor", "version": "v1"}
    extractor["params"] = {"split_by": "sentences", "chunk_size": 40, "chunk_overlap": 0}
    r = await client.post(
        "/v1/namespaces", json={"namespace_name": "docs", "feature_extractors": [extractor]}
    )
    assert r.status_code == 200, r.text
    await client.post("/v1/buckets", headers=NS, json={"bucket_name": "a", "bucket_schema": SCHEMA})
    text = "The cat sat on the mat. Quarterly revenue grew five percent."
    obj = await _object(client, "a", text)
    batch = await _process(client, "a", [obj])
    assert batch["status"] == "COMPLETED", batch
    docs = (
        await client.get(
            f"/v1/objects/{obj}/documents", headers=NS, params={"include_vectors": "true"}
        )
    ).json()
    texts = sorted(d["content"]["text"] for d in docs)
    assert texts == ["Quarterly revenue grew five percent.", "The cat sat on the mat."]
    for d in docs:
        (vector,) = d["features"].values()
        assert len(vector) == 384 and abs(sum(x * x for x in vector) - 1) < 1e-3
        start, end = d["source"]["segment"]["start_char"], d["source"]["segment"]["end_char"]
        assert text[start:end] == d["content"]["text"]


async def test_image_extractor_documents_read_the_drawn_word(client: httpx.AsyncClient) -> None:
    extractor = {"feature_extractor_name": "image_extractor", "version": "v1"}
    r = await client.post(
        "/v1/namespaces", json={"namespace_name": "docs", "feature_extractors": [extractor]}
    )
    assert r.status_code == 200, r.text
    schema = {"properties": {"scan": {"type": "image"}}}
    await client.post("/v1/buckets", headers=NS, json={"bucket_name": "a", "bucket_schema": schema})
    img = Image.new("RGB", (420, 140), "white")
    ImageDraw.Draw(img).text(
        (20, 30), "INVOICE", fill="black", font=ImageFont.load_default(size=64)
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    body = {"blobs": [{"property": "scan", "type": "image", "content": b64(buf.getvalue())}]}
    obj = (await client.post("/v1/buckets/a/objects", headers=NS, json=body)).json()["object_id"]
    batch = await _process(client, "a", [obj])
    assert batch["status"] == "COMPLETED", batch
    (doc,) = (
        await client.get(
            f"/v1/objects/{obj}/documents", headers=NS, params={"include_vectors": "true"}
        )
    ).json()
    assert "invoice" in doc["content"]["ocr_text"].lower()
    assert len(doc["content"]["labels"]) == 5
    dims = sorted(len(v) for v in doc["features"].values())
    assert dims == [384, 1280]
