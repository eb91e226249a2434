"""Blob content must match its declared type (Pillow, PyAV, UTF-8, JSON, %PDF), and blob URLs
go through the SSRF guard, the redirect limit, the status check and the size cap.

Everything is real: media is generated in the test (stdlib `wave`, PyAV, Pillow) and URL blobs
are served by a `ThreadingHTTPServer` on 127.0.0.1.
"""

from __future__ import annotations

import io
import math
import random
import struct
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from assay.config import Settings
from tests.conftest import (
    ADMIN_KEY,
    Origin,
    b64,
    make_bucket,
    make_namespace,
    open_client,
    png_bytes,
)

MEDIA_SCHEMA = {
    "properties": {
        "img": {"type": "image"},
        "aud": {"type": "audio"},
        "vid": {"type": "video"},
        "doc": {"type": "json"},
        "txt": {"type": "text"},
        "pdf": {"type": "pdf"},
    }
}
PNG = png_bytes("MEDIA", (80, 40))
NOISE = random.Random(7).randbytes(4096)
MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def wav_bytes(seconds: float = 0.5, rate: int = 8000, freq: float = 440.0) -> bytes:
    """A mono 16-bit PCM WAV of a sine tone."""
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(int(seconds * rate))
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


WAV = wav_bytes()


def mp4_bytes(path: Path) -> bytes:
    """Ten 64x64 frames encoded with PyAV (mpeg4, else h264)."""
    import av

    codec = next((c for c in ("mpeg4", "libx264", "h264") if c in av.codecs_available), None)
    if codec is None:
        pytest.skip("PyAV has no mpeg4/h264 encoder")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(10):
            img = Image.new("RGB", (64, 64), (i * 25, 255 - i * 25, 80))
            for packet in stream.encode(av.VideoFrame.from_image(img)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def noisy_png(side: int = 80) -> bytes:
    """A PNG that does not compress: side*side random grey pixels."""
    img = Image.frombytes("L", (side, side), random.Random(side).randbytes(side * side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- app clients


class Api:
    def __init__(self, client: httpx.AsyncClient, ns_id: str, bucket_id: str) -> None:
        self.client = client
        self.h = {"X-Namespace": ns_id}
        self.bucket_id = bucket_id
        self.base = f"/v1/buckets/{bucket_id}/objects"

    async def create(self, *blobs: dict[str, Any]) -> httpx.Response:
        return await self.client.post(self.base, json={"blobs": list(blobs)}, headers=self.h)

    async def content(self, obj: dict[str, Any], i: int = 0) -> httpx.Response:
        url = f"{self.base}/{obj['object_id']}/blobs/{obj['blobs'][i]['blob_id']}/content"
        return await self.client.get(url, headers=self.h)

    async def count(self) -> int:
        r = await self.client.get(f"/v1/buckets/{self.bucket_id}", headers=self.h)
        assert r.status_code == 200, r.text
        return int(r.json()["object_count"])


async def make_api(client: httpx.AsyncClient) -> Api:
    ns = await make_namespace(client, name=f"ns-{uuid.uuid4().hex[:12]}")
    bucket = await make_bucket(client, ns["namespace_id"], schema=MEDIA_SCHEMA)
    return Api(client, ns["namespace_id"], bucket["bucket_id"])


# One app per setting for the whole module (start-up runs the migrations); each test gets a
# fresh namespace and bucket. Everything runs on the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """Default settings: private and loopback URLs are refused."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("media") / "data", admin_key=ADMIN_KEY)
    assert settings.allow_private_urls is False
    async with open_client(settings) as c:
        yield c


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pclient(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """Private URLs allowed, so blobs can come from the loopback origin."""
    data_dir = tmp_path_factory.mktemp("media-private") / "data"
    settings = Settings(data_dir=data_dir, admin_key=ADMIN_KEY, allow_private_urls=True)
    async with open_client(settings) as c:
        yield c


@pytest_asyncio.fixture(loop_scope="module")
async def api(client: httpx.AsyncClient) -> Api:
    return await make_api(client)


@pytest_asyncio.fixture(loop_scope="module")
async def papi(pclient: httpx.AsyncClient) -> Api:
    return await make_api(pclient)


def assert_422(r: httpx.Response, loc: list[Any], msg_part: str) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["success"] is False and body["error"]["type"] == "ValidationError"
    first = body["error"]["details"]["validation_errors"][0]
    assert first["loc"] == loc, first
    assert msg_part.lower() in first["msg"].lower(), first
    return dict(first)


def blob(prop: str, kind: str, **source: Any) -> dict[str, Any]:
    return {"property": prop, "type": kind, **source}


# --------------------------------------------------------------------------- content vs type

BIG_BAD_UTF8 = b"a" * (70 * 1024) + b"\xff\xfe"
BIG_BAD_JSON = b'{"k": "' + b"v" * (70 * 1024)


@pytest.mark.parametrize(
    ("given", "msg_part"),
    [
        (blob("img", "image", content=b64(NOISE)), "not an image"),
        (blob("img", "image", content=b64(PNG[: len(PNG) // 2])), "not an image"),
        (blob("img", "image", data={"base64": b64(b"GIF89a" + NOISE[:64])}), "not an image"),
        (blob("doc", "json", data={"base64": b64(b'{"a": 1,,}')}), "not valid json"),
        (
            blob("doc", "json", data="data:application/json;base64," + b64(b"{nope")),
            "not valid json",
        ),
        (blob("doc", "json", data={"base64": b64(BIG_BAD_JSON)}), "not valid json"),
        (blob("txt", "text", data="data:text/plain;base64," + b64(b"caf\xe9 \xff")), "utf-8"),
        (blob("txt", "text", data={"base64": b64(BIG_BAD_UTF8)}), "utf-8"),
        (blob("pdf", "pdf", content=b64(b"PK\x03\x04 not a pdf")), "%pdf"),
        (blob("aud", "audio", content=b64(NOISE)), "not audio"),
        (blob("vid", "video", content=b64(NOISE)), "not video"),
        (blob("aud", "audio", data={"base64": b64(WAV[:40])}), "audio"),
    ],
    ids=[
        "image-random-bytes",
        "image-truncated-png",
        "image-gif-header-only",
        "json-base64-invalid",
        "json-data-uri-invalid",
        "json-large-base64-invalid",
        "text-data-uri-not-utf8",
        "text-large-not-utf8",
        "pdf-without-header",
        "audio-random-bytes",
        "video-random-bytes",
        "audio-wav-header-only",
    ],
)
async def test_content_that_does_not_match_its_type_is_422(
    api: Api, given: dict[str, Any], msg_part: str
) -> None:
    r = await api.create(given)
    err = assert_422(r, ["blobs", 0], msg_part)
    assert err["type"] == "invalid_content"
    assert await api.count() == 0


async def test_invalid_json_fetched_from_a_url_is_422(papi: Api, origin: Origin) -> None:
    url = origin.serve("/doc.json", b"{'single': 'quotes'}", "application/json")
    r = await papi.create(blob("doc", "json", url=url))
    err = assert_422(r, ["blobs", 0], "not valid json")
    assert err["type"] == "invalid_content"
    assert origin.hits == ["/doc.json"]
    good = origin.serve("/ok.json", b'{"fine": [1, 2]}', "application/json")
    ok = await papi.create(blob("doc", "json", url=good))
    assert ok.status_code == 200, ok.text
    assert ok.json()["blobs"][0]["content_type"] == "application/json"


async def test_image_that_is_not_an_image_at_a_url_is_422(papi: Api, origin: Origin) -> None:
    url = origin.serve("/fake.png", NOISE, "image/png")
    r = await papi.create(blob("img", "image", url=url))
    assert_422(r, ["blobs", 0], "not an image")
    assert await papi.count() == 0


async def test_valid_pdf_is_accepted(api: Api) -> None:
    r = await api.create(blob("pdf", "pdf", content=b64(MINIMAL_PDF)))
    assert r.status_code == 200, r.text
    out = r.json()["blobs"][0]
    assert out["content_type"] == "application/pdf"
    assert out["size_bytes"] == len(MINIMAL_PDF)


async def test_real_wav_is_accepted_as_audio(api: Api) -> None:
    r = await api.create(blob("aud", "audio", content=b64(WAV)))
    assert r.status_code == 200, r.text
    out = r.json()["blobs"][0]
    assert out["content_type"].startswith("audio/"), out
    assert out["size_bytes"] == len(WAV)
    dl = await api.content(r.json())
    assert dl.status_code == 200 and dl.content == WAV


async def test_real_video_is_accepted_as_video(api: Api, tmp_path: Path) -> None:
    mp4 = mp4_bytes(tmp_path / "clip.mp4")
    r = await api.create(blob("vid", "video", content=b64(mp4)))
    assert r.status_code == 200, r.text
    out = r.json()["blobs"][0]
    assert out["content_type"].startswith("video/"), out
    assert out["size_bytes"] == len(mp4)
    dl = await api.content(r.json())
    assert dl.status_code == 200 and dl.content == mp4


async def test_audio_without_video_stream_is_not_video(api: Api, tmp_path: Path) -> None:
    r = await api.create(blob("vid", "video", content=b64(WAV)))
    assert_422(r, ["blobs", 0], "no video stream")
    silent = mp4_bytes(tmp_path / "silent.mp4")
    r = await api.create(blob("aud", "audio", content=b64(silent)))
    assert_422(r, ["blobs", 0], "no audio stream")
    assert await api.count() == 0


async def test_video_by_url_keeps_the_served_video_type(papi: Api, origin: Origin, tmp_path: Path):
    url = origin.serve("/clip.mp4", mp4_bytes(tmp_path / "c.mp4"), "video/mp4")
    r = await papi.create(blob("vid", "video", url=url))
    assert r.status_code == 200, r.text
    assert r.json()["blobs"][0]["content_type"] == "video/mp4"
    assert r.json()["blobs"][0]["url"] == url


# --------------------------------------------------------------------------- SSRF guard


def _ssrf_urls(port: int) -> list[tuple[str, str]]:
    return [
        (f"http://127.0.0.1:{port}/x", "not allowed"),
        (f"http://localhost:{port}/", "not allowed"),
        (f"http://127.1:{port}/x", "not allowed"),
        (f"http://2130706433:{port}/x", "not allowed"),
        (f"http://[::ffff:127.0.0.1]:{port}/x", "not allowed"),
        (f"http://0.0.0.0:{port}/x", "not allowed"),
        ("http://169.254.169.254/latest/meta-data", "not allowed"),
        ("http://10.0.0.1/", "not allowed"),
        ("http://192.168.1.1/admin", "not allowed"),
        ("ftp://example.com/x", "http"),
        ("file:///etc/passwd", "http"),
    ]


SSRF_IDS = [
    "loopback",
    "localhost",
    "short-loopback",
    "decimal-loopback",
    "v4-mapped-loopback",
    "unspecified",
    "metadata",
    "private-10",
    "private-192",
    "ftp",
    "file",
]


@pytest.mark.parametrize("case", range(len(SSRF_IDS)), ids=SSRF_IDS)
async def test_ssrf_guard_refuses_private_targets(api: Api, origin: Origin, case: int) -> None:
    origin.serve("/x", PNG, "image/png")
    origin.serve("/", PNG, "image/png")
    url, msg_part = _ssrf_urls(origin.port)[case]
    r = await api.create(blob("img", "image", url=url))
    err = assert_422(r, ["blobs", 0, "url"], msg_part)
    assert "stack" not in err["msg"].lower()
    assert origin.hits == [], "the guard let a request reach the loopback server"
    assert await api.count() == 0


@pytest.mark.parametrize("form", ["url-string", "url-object"])
async def test_ssrf_guard_applies_to_data_urls_too(api: Api, origin: Origin, form: str) -> None:
    target = origin.serve("/x", PNG, "image/png")
    data: Any = target if form == "url-string" else {"url": target}
    r = await api.create(blob("img", "image", data=data))
    assert r.status_code == 422, r.text
    first = r.json()["error"]["details"]["validation_errors"][0]
    assert first["loc"][:3] == ["blobs", 0, "data"], first
    assert "not allowed" in first["msg"]
    assert origin.hits == []


def _hop_chain(origin: Origin, length: int) -> str:
    """/hops/N redirects to /hops/N-1 ... /hops/0, which serves the PNG."""
    origin.serve("/hops/0", PNG, "image/png")
    for k in range(1, length + 1):
        origin.redirect(f"/hops/{k}", f"/hops/{k - 1}")
    return f"{origin.base}/hops/{length}"


@pytest.mark.parametrize("hops", [2, 3])
async def test_redirects_up_to_three_are_followed(papi: Api, origin: Origin, hops: int) -> None:
    r = await papi.create(blob("img", "image", url=_hop_chain(origin, hops)))
    assert r.status_code == 200, r.text
    out = r.json()["blobs"][0]
    assert out["content_type"] == "image/png" and out["size_bytes"] == len(PNG)
    assert origin.hits == [f"/hops/{k}" for k in range(hops, -1, -1)]


async def test_four_redirects_are_too_many(papi: Api, origin: Origin) -> None:
    r = await papi.create(blob("img", "image", url=_hop_chain(origin, 4)))
    assert_422(r, ["blobs", 0, "url"], "too many redirects")
    assert "/hops/0" not in origin.hits
    assert await papi.count() == 0


@pytest.mark.parametrize("status", [404, 500])
async def test_url_answering_an_error_status_is_422(papi: Api, origin: Origin, status: int) -> None:
    url = origin.serve("/missing.png", b"nope", "text/plain", status=status)
    r = await papi.create(blob("img", "image", url=url))
    assert_422(r, ["blobs", 0, "url"], str(status))
    assert origin.hits == ["/missing.png"]
    assert await papi.count() == 0


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "streamed"])
async def test_body_over_the_fetch_cap_is_422(
    tmp_path: Path, origin: Origin, with_length: bool
) -> None:
    capped = Settings(
        data_dir=tmp_path / "capped",
        admin_key=ADMIN_KEY,
        allow_private_urls=True,
        fetch_max_bytes=1000,
    )
    big = noisy_png()
    small = png_bytes("s", (16, 16))
    assert len(big) > 5000 and len(small) < 1000
    extra = {} if with_length else {"X-No-Length": "1"}
    big_url = origin.serve("/big.png", big, "image/png", **extra)
    small_url = origin.serve("/small.png", small, "image/png", **extra)
    async with open_client(capped) as c:
        api = await make_api(c)
        r = await api.create(blob("img", "image", url=big_url))
        assert_422(r, ["blobs", 0, "url"], "larger than 1000")
        assert await api.count() == 0
        ok = await api.create(blob("img", "image", url=small_url))
        assert ok.status_code == 200, ok.text
        assert ok.json()["blobs"][0]["size_bytes"] == len(small)
    # (this test process's own scratch lock stays while it lives)
    leftovers = [p for p in capped.tmp_dir.rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert leftovers == [], "a refused download left a temp file behind"
