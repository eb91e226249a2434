"""Search across modalities on the real models: one namespace with multimodal_extractor holding
drawn-word images, plain shapes, texts, espeak speech and a video with speech in one window and a
drawn word in another, searched by text and by image over HTTP (issue 6, item 4)."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio
from PIL import Image, ImageDraw, ImageFont

from assay.batches.service import JOB_KIND
from assay.batches.tasks import BatchExtraction
from assay.config import Settings
from assay.engine.local import LocalWorkers
from assay.extractors.builtin import media
from assay.main import create_app
from tests import media_fixtures
from tests.conftest import ADMIN_KEY, b64
from tests.media_fixtures import SPEECH, speech_track

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SPOKEN = "the quick brown fox jumps over the lazy dog"
MAIN, OTHER = {"X-Namespace": "media"}, {"X-Namespace": "elsewhere"}
ECHO = {"X-Namespace": "echo"}  # the same sentence said twice, 20 s apart
ECHO_S, ECHO_AT_S = 30, (1, 21)
MULTI = {"feature_extractor_name": "multimodal_extractor", "version": "v1"}
TEXT_URI = "assay://multimodal_extractor@v1/text_embedding"
VISUAL_URI = "assay://multimodal_extractor@v1/visual_embedding"
WORDS = ("INVOICE", "BANANA", "ROCKET")
TEXTS = {
    "volcano": "Lava poured from the erupting volcano and ash covered the nearby villages.",
    "baking": "Knead the dough, let it rise overnight, then bake the bread until golden.",
    "finance": "The central bank raised interest rates to slow down rising inflation.",
}
VIDEO_WORD = "HARBOUR"  # drawn on the video's first window
VIDEO_S, WINDOW_S, SPEECH_AT_S, FPS = 20, 10, 12, 5
SCHEMA = {
    "properties": {
        "body": {"type": "text"},
        "picture": {"type": "image"},
        "sound": {"type": "audio"},
        "clip": {"type": "video"},
    }
}


def _font(size: int) -> Any:
    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def word_image(word: str, size: tuple[int, int] = (480, 200)) -> Image.Image:
    """A big black word on white."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.text((30, 60), word, fill="black", font=_font(64))
    return img


def shape_image(kind: str) -> Image.Image:
    """A red circle or a blue square on white."""
    img = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(img)
    if kind == "red circle":
        draw.ellipse((48, 48, 208, 208), fill=(220, 20, 20))
    else:
        draw.rectangle((48, 48, 208, 208), fill=(20, 40, 220))
    return img


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def mp4(windows: list[Image.Image], audio: np.ndarray) -> bytes:
    """An MP4 at FPS showing `windows[i]` for the i-th WINDOW_S seconds, over `audio`."""
    return media_fixtures.mp4(lambda i: windows[i // (WINDOW_S * FPS)], audio, FPS)


def make_video() -> bytes:
    """20 s: the drawn word for 10 s, then blue; the speech starts at 12 s."""
    word = Image.new("RGB", (320, 240), "white")
    ImageDraw.Draw(word).text((20, 80), VIDEO_WORD, fill="black", font=_font(48))
    blue = Image.new("RGB", (320, 240), (30, 60, 200))
    return mp4([word, blue], speech_track(VIDEO_S, [SPEECH_AT_S]))


def wav(samples: np.ndarray) -> bytes:
    """Mono float samples as a 16 kHz 16-bit WAV."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return buf.getvalue()


async def _drain(c: httpx.AsyncClient) -> None:
    ctx = c._transport.app.state.ctx  # type: ignore[attr-defined]
    workers = {JOB_KIND: BatchExtraction(ctx.db, ctx.keeper, ctx.registry)}
    await LocalWorkers(ctx.db, workers).run_until_idle()


async def _ingest(
    c: httpx.AsyncClient, headers: dict[str, str], objects: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """A namespace with multimodal_extractor and one bucket holding `objects`, processed."""
    name = headers["X-Namespace"]
    r = await c.post("/v1/namespaces", json={"namespace_name": name, "feature_extractors": [MULTI]})
    assert r.status_code == 200, r.text
    r = await c.post(
        "/v1/buckets", headers=headers, json={"bucket_name": "things", "bucket_schema": SCHEMA}
    )
    assert r.status_code == 200, r.text
    ids: dict[str, str] = {}
    for label, body in objects.items():
        body = {"metadata": {"label": label}, **body}
        r = await c.post("/v1/buckets/things/objects", headers=headers, json=body)
        assert r.status_code == 200, r.text
        ids[label] = r.json()["object_id"]
    r = await c.post(
        "/v1/buckets/things/batches", headers=headers, json={"object_ids": list(ids.values())}
    )
    batch_id = r.json()["batch_id"]
    r = await c.post(f"/v1/buckets/things/batches/{batch_id}/submit", headers=headers)
    assert r.status_code == 200, r.text
    await _drain(c)
    batch = (await c.get(f"/v1/buckets/things/batches/{batch_id}", headers=headers)).json()
    assert batch["status"] == "COMPLETED", batch
    assert batch["progress"]["succeeded"] == len(ids), batch
    return ids


def _blob(prop: str, kind: str, content: str) -> dict[str, Any]:
    return {"blobs": [{"property": prop, "type": kind, "content": content}]}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Any]]:
    """The three namespaces built once; the client and each one's object ids by label."""
    data = tmp_path_factory.mktemp("modalities") / "data"
    app = create_app(Settings(data_dir=data, admin_key=ADMIN_KEY, workers=0))
    objects: dict[str, dict[str, Any]] = {}
    for word in WORDS:
        objects[word] = _blob("picture", "image", b64(png(word_image(word))))
    for shape in ("red circle", "blue square"):
        objects[shape] = _blob("picture", "image", b64(png(shape_image(shape))))
    for topic, text in TEXTS.items():
        objects[topic] = _blob("body", "text", text)
    objects["speech"] = _blob("sound", "audio", b64(SPEECH.read_bytes()))
    objects["video"] = _blob("clip", "video", b64(make_video()))
    # Another tenant holds look-alikes of the same things: none may leak into the first.
    elsewhere = {
        "BANANA": _blob("picture", "image", b64(png(word_image("BANANA")))),
        "volcano": _blob("body", "text", TEXTS["volcano"]),
        "fox": _blob("body", "text", "The quick brown fox jumps over the lazy dog."),
    }
    # Speech in the first and the third window of a video, and the same track as audio.
    track = speech_track(ECHO_S, list(ECHO_AT_S))
    grey = Image.new("RGB", (320, 240), (128, 128, 128))
    echo = {
        "echo video": _blob("clip", "video", b64(mp4([grey] * 3, track))),
        "echo audio": _blob("sound", "audio", b64(wav(track))),
    }
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://assay.test",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=120,
        ) as c:
            ids = await _ingest(c, MAIN, objects)
            other_ids = await _ingest(c, OTHER, elsewhere)
            echo_ids = await _ingest(c, ECHO, echo)
            yield {"client": c, "ids": ids, "other_ids": other_ids, "echo_ids": echo_ids}


def _semantic(uri: str = TEXT_URI, query: Any = "{{INPUT.query}}", top_k: int = 20) -> Any:
    search = {"feature_uri": uri, "query": query, "top_k": top_k}
    params = {"searches": [search], "final_top_k": top_k}
    return {
        "stage_name": "semantic",
        "config": {"stage_id": "feature_search", "parameters": params},
    }


def _words(query: str = "{{INPUT.query}}") -> Any:
    params = {"query": query}
    return {"stage_name": "words", "config": {"stage_id": "text_search", "parameters": params}}


GROUP = {
    "stage_name": "g",
    "config": {"stage_id": "group_by", "parameters": {"field": "object_id"}},
}


async def _execute(
    w: dict[str, Any],
    stages: list[Any],
    inputs: dict[str, Any],
    headers: dict[str, str] = MAIN,
    **body: Any,
) -> list[dict[str, Any]]:
    payload = {
        "collection_identifiers": ["multimodal_extractor"],
        "stages": stages,
        "inputs": inputs,
        "limit": 50,
        **body,
    }
    r = await w["client"].post("/v1/retrievers/execute", headers=headers, json=payload)
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def _labels(w: dict[str, Any], results: list[dict[str, Any]]) -> list[str]:
    by_id = {v: k for k, v in w["ids"].items()}
    return [by_id.get(r["source"]["object_id"], "?") for r in results]


@pytest.mark.parametrize("word", WORDS)
async def test_a_drawn_word_finds_its_image_first(world: dict[str, Any], word: str) -> None:
    for query in (word.lower(), f"a picture with the word {word.lower()}"):
        semantic = await _execute(world, [_semantic()], {"query": query})
        assert _labels(world, semantic)[0] == word, (query, _labels(world, semantic))
        first = semantic[0]
        assert word.lower() in first["content"]["ocr_text"].lower()
        assert (first["content"]["labels"] and "segment" not in (first["source"] or {})) or (
            first["source"].get("segment") is None
        )
    found = await _execute(world, [_words()], {"query": word.lower()})
    assert _labels(world, found) == [word], _labels(world, found)  # BM25 over the OCR text


async def test_spoken_words_find_the_audio_and_the_video_window(world: dict[str, Any]) -> None:
    speech_ms = media.probe(SPEECH.read_bytes()).duration_ms
    for stages in ([_semantic()], [_words()]):
        results = await _execute(world, stages, {"query": "a brown fox jumping over a lazy dog"})
        labels = _labels(world, results)
        assert set(labels[:2]) == {"speech", "video"}, (stages[0]["stage_name"], labels)
        audio = results[labels.index("speech")]
        seg = audio["source"]["segment"]
        assert 0 <= seg["start_ms"] < seg["end_ms"] <= speech_ms
        assert "fox" in audio["content"]["transcript"].lower()
        video = results[labels.index("video")]
        seg = video["source"]["segment"]
        # the window holding the speech (12 s → ~18 s), not the first one
        assert (seg["start_ms"], seg["end_ms"]) == (10_000, 20_000)
        assert seg["start_ms"] <= SPEECH_AT_S * 1000 < seg["end_ms"]
        assert "fox" in video["content"]["transcript"].lower()
        # the silent window, if it shows up at all, ranks below the spoken one
        windows = [
            r["source"]["segment"]["start_ms"]
            for r, lab in zip(results, labels, strict=True)
            if lab == "video"
        ]
        assert windows[0] == 10_000


async def test_the_drawn_word_of_a_video_finds_its_first_window(world: dict[str, Any]) -> None:
    results = await _execute(world, [_words()], {"query": VIDEO_WORD.lower()})
    assert _labels(world, results) == ["video"]
    assert results[0]["source"]["segment"] == {"start_ms": 0, "end_ms": 10_000}
    assert VIDEO_WORD.lower() in results[0]["content"]["ocr_text"].lower()
    semantic = await _execute(world, [_semantic()], {"query": "harbour sign"})
    first_video = next(r for r in semantic if _labels(world, [r]) == ["video"])
    assert first_video["source"]["segment"]["start_ms"] == 0


async def test_a_text_query_finds_the_matching_text_chunk(world: dict[str, Any]) -> None:
    queries = {
        "molten rock from a mountain eruption": "volcano",
        "how to make a loaf at home": "baking",
        "monetary policy and prices": "finance",
    }
    for query, topic in queries.items():
        results = await _execute(world, [_semantic()], {"query": query})
        assert _labels(world, results)[0] == topic, (query, _labels(world, results))
        assert results[0]["content"]["text"] == TEXTS[topic]
    results = await _execute(world, [_words()], {"query": "interest rates"})
    assert _labels(world, results) == ["finance"]


def _altered(img: Image.Image) -> bytes:
    """Shrunk to 80 %, shifted right and down by a few pixels, saved as JPEG."""
    w, h = img.size
    small = img.resize((w * 4 // 5, h * 4 // 5), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (w, h), "white")
    canvas.paste(small, (w // 12, h // 10))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


@pytest.mark.parametrize(
    "label,image",
    [
        ("red circle", lambda: shape_image("red circle")),
        ("blue square", lambda: shape_image("blue square")),
        ("ROCKET", lambda: word_image("ROCKET")),
    ],
)
async def test_an_image_query_finds_the_original_first(
    world: dict[str, Any], label: str, image: Any
) -> None:
    query = b64(_altered(image()))
    results = await _execute(
        world, [_semantic(VISUAL_URI, "{{INPUT.query_image}}")], {"query_image": query}
    )
    labels = _labels(world, results)
    assert labels[0] == label, labels
    assert results[0]["score"] > 0.8
    # the image documents and the video keyframes carry visual vectors; texts and audio do not
    assert set(labels) <= {*WORDS, "red circle", "blue square", "video"}


async def test_group_by_object_across_modalities(world: dict[str, Any]) -> None:
    stages = [_semantic(top_k=50), GROUP]
    results = await _execute(world, stages, {"query": "a fox, a rocket and bread"})
    objects = [r["source"]["object_id"] for r in results]
    assert len(objects) == len(set(objects))
    # every object of the namespace is there once, the two-window video included
    assert sorted(objects) == sorted(world["ids"].values())
    ungrouped = await _execute(world, [_semantic(top_k=50)], {"query": "a fox, a rocket and bread"})
    assert _labels(world, ungrouped).count("video") == 2
    # group order is the order of each object's best hit
    first_seen: list[str] = []
    for r in ungrouped:
        if r["source"]["object_id"] not in first_seen:
            first_seen.append(r["source"]["object_id"])
    assert objects == first_seen


async def test_another_namespace_never_shows_up(world: dict[str, Any]) -> None:
    other = set(world["other_ids"].values())
    mine = set(world["ids"].values())
    for inputs, stages in [
        ({"query": "banana"}, [_semantic(top_k=100)]),
        ({"query": "banana"}, [_words()]),
        ({"query": SPOKEN}, [_semantic(top_k=100), GROUP]),
        ({"query": "volcano lava"}, [_words()]),
        (
            {"query_image": b64(png(word_image("BANANA")))},
            [_semantic(VISUAL_URI, "{{INPUT.query_image}}", top_k=100)],
        ),
    ]:
        results = await _execute(world, stages, inputs)
        assert results and {r["source"]["object_id"] for r in results} <= mine
        theirs = await _execute(world, stages, inputs, headers=OTHER)
        assert theirs and {r["source"]["object_id"] for r in theirs} <= other


async def test_speech_after_a_silence_keeps_its_own_time(world: dict[str, Any]) -> None:
    """The second utterance starts at 21 s: its audio segment starts there, not where the first
    one ended, and it lands in the video's third window, not in the silent second one."""
    by_id = {v: k for k, v in world["echo_ids"].items()}
    speech_ms = media.probe(SPEECH.read_bytes()).duration_ms
    results = await _execute(world, [_words()], {"query": "quick brown fox"}, headers=ECHO)
    audio = sorted(
        (r["source"]["segment"]["start_ms"], r["source"]["segment"]["end_ms"])
        for r in results
        if by_id[r["source"]["object_id"]] == "echo audio"
    )
    assert len(audio) == 2, audio
    for (start, end), at_s in zip(audio, ECHO_AT_S, strict=True):
        # within a second of where the speech really is
        assert at_s * 1000 - 1000 <= start <= at_s * 1000 + 1000, audio
        assert end <= at_s * 1000 + speech_ms + 1000, audio
    windows = sorted(
        r["source"]["segment"]["start_ms"]
        for r in results
        if by_id[r["source"]["object_id"]] == "echo video"
    )
    assert windows == [0, 20_000], windows  # the silent window 10-20 s has no transcript
