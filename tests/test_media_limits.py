"""Hostile media (issue 11): decompression bombs, tiny files stating huge durations and images
posing as video are refused with a 422 naming the limit, never a 500, and extraction of what
gets past registration stays bounded.

The hostile files are made here: PNGs written chunk by chunk with their zero rows compressed
as they stream (a 30000x30000 image costs 110 KB and no pixel buffer), MP4s written with PyAV
and then patched to state a duration their few frames do not have.
"""

from __future__ import annotations

import hashlib
import io
import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
import pytest_asyncio
from PIL import Image

from assay.config import Settings
from assay.extractors.base import BlobInput, ExtractorError, ObjectInput
from assay.extractors.builtin.image import ImageExtractor, decode_image
from assay.extractors.builtin.multimodal import MultimodalExtractor
from assay.kit.limits import MediaLimits
from assay.objects import media
from tests.conftest import ADMIN_KEY, b64, make_bucket, make_namespace, open_client, png_bytes

SCHEMA = {"properties": {"img": {"type": "image"}, "vid": {"type": "video"}}}
HOUR = 3600


def bomb_png(width: int, height: int, bit_depth: int = 1, color_type: int = 0) -> bytes:
    """A PNG of `width` x `height` zero pixels (1-bit grey by default, 2 = 8-bit RGB), its rows
    compressed as they stream: nothing the size of the image is ever held."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    channels = 3 if color_type == 2 else 1
    row = b"\0" * (1 + (width * channels * bit_depth + 7) // 8)  # filter byte + pixels
    per_block = max(1, (1 << 22) // len(row))
    z = zlib.compressobj(9)
    parts, left = [], height
    while left:
        n = min(per_block, left)
        parts.append(z.compress(row * n))
        left -= n
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


BOMB = bomb_png(30_000, 30_000)  # 900 MP in ~110 KB


def small_mp4(frames: int = 10, fps: int = 10, size: tuple[int, int] = (64, 64)) -> bytes:
    """`frames` mpeg4 frames of `size`, one second at 10 fps by default (~1.7 KB)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        v = out.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = *size, "yuv420p"
        for i in range(frames):
            img = Image.new("RGB", size, (i * 20 % 256, 60, 120))
            frame = av.VideoFrame.from_image(img)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return buf.getvalue()


def stating(seconds: int, data: bytes | None = None, frames: int = 10) -> bytes:
    """A small MP4 patched to state `seconds`: the movie and media time scales set to 1 s, and
    the durations (mvhd, tkhd, elst, mdhd) and the frames' spacing (stts) stretched to match."""
    out = bytearray(data if data is not None else small_mp4(frames))

    def put(box: bytes, offset: int, value: int) -> None:
        at = out.find(box) - 4  # the box starts with its 4-byte size
        assert at >= 0, box
        struct.pack_into(">I", out, at + offset, value)

    put(b"mvhd", 20, 1)  # timescale
    put(b"mvhd", 24, seconds)  # duration
    put(b"tkhd", 28, seconds)
    put(b"elst", 16, seconds)  # the first edit's segment duration
    put(b"mdhd", 20, 1)
    put(b"mdhd", 24, seconds)
    put(b"stts", 20, seconds // frames)  # the one entry's sample delta
    return bytes(out)


TINY_LONG = stating(50_000_000)  # the file: ~1.7 KB stating 5x10^7 s (1.6 years)
# 2^32 - 1 s: PyAV reads no duration at all, only frames 4.3x10^8 s apart.
TINY_ENDLESS = stating(4_294_967_295)


def test_the_hostile_files_are_what_they_claim() -> None:
    with Image.open(io.BytesIO(png_bytes())) as small:
        assert small.size == (96, 48)
    assert len(BOMB) < 200_000
    with pytest.raises(Image.DecompressionBombError):  # Pillow's own global limit
        Image.open(io.BytesIO(BOMB))
    assert len(TINY_LONG) < 2_000
    with av.open(io.BytesIO(TINY_LONG)) as c:
        assert c.duration is not None and c.duration / 1e6 == pytest.approx(5e7)
    with av.open(io.BytesIO(TINY_ENDLESS)) as c:
        times = [f.time for f in c.decode(c.streams.video[0])]
        assert c.duration is None and times[1] > 4e8


# --------------------------------------------------------------------------- registration


# One app for the module (start-up runs the migrations); each test gets a fresh bucket.
on_module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    data_dir = tmp_path_factory.mktemp("limits") / "data"
    settings = Settings(data_dir=data_dir, admin_key=ADMIN_KEY, workers=0)
    async with open_client(settings) as c:
        yield c


class Bucket:
    def __init__(self, client: httpx.AsyncClient, ns_id: str, bucket_id: str) -> None:
        self.client, self.h, self.id = client, {"X-Namespace": ns_id}, bucket_id

    async def create(self, *blobs: dict[str, Any]) -> httpx.Response:
        url = f"/v1/buckets/{self.id}/objects"
        return await self.client.post(url, json={"blobs": list(blobs)}, headers=self.h)

    async def count(self) -> int:
        r = await self.client.get(f"/v1/buckets/{self.id}", headers=self.h)
        assert r.status_code == 200, r.text
        return int(r.json()["object_count"])


@pytest_asyncio.fixture(loop_scope="module")
async def bucket(client: httpx.AsyncClient) -> Bucket:
    ns = await make_namespace(client, name=f"ns-{uuid.uuid4().hex[:12]}")
    made = await make_bucket(client, ns["namespace_id"], schema=SCHEMA)
    return Bucket(client, ns["namespace_id"], made["bucket_id"])


def refusal(r: httpx.Response, loc: list[Any]) -> str:
    """The message of a 422 in the error envelope at `loc`."""
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["success"] is False and body["error"]["type"] == "ValidationError"
    first = body["error"]["details"]["validation_errors"][0]
    assert first["loc"] == loc, first
    return str(first["msg"])


@on_module_loop
async def test_a_decompression_bomb_inline_is_422_naming_size_limit_and_setting(
    bucket: Bucket,
) -> None:
    before = await bucket.count()
    r = await bucket.create({"property": "img", "type": "image", "content": b64(BOMB)})
    msg = refusal(r, ["blobs", 0])
    assert "30000x30000" in msg and "100,000,000" in msg and "ASSAY_MAX_IMAGE_PIXELS" in msg
    assert await bucket.count() == before


@on_module_loop
async def test_a_decompression_bomb_confirmed_as_an_upload_is_422(bucket: Bucket) -> None:
    c = bucket.client
    up = await c.post(
        f"/v1/buckets/{bucket.id}/uploads",
        headers=bucket.h,
        json={"filename": "bomb.png", "content_type": "image/png", "blob_property": "img"},
    )
    assert up.status_code == 200, up.text
    put = await c.put(up.json()["presigned_url"], content=BOMB, headers={"Authorization": ""})
    assert put.status_code == 200 and put.json()["sha256"] == hashlib.sha256(BOMB).hexdigest()
    r = await c.post(
        f"/v1/buckets/{bucket.id}/uploads/{up.json()['upload_id']}/confirm", headers=bucket.h
    )
    assert r.status_code == 422, r.text
    assert "ASSAY_MAX_IMAGE_PIXELS" in r.json()["error"]["message"]
    assert await bucket.count() == 0


@on_module_loop
async def test_a_decompression_bomb_as_a_query_image_is_422(bucket: Bucket) -> None:
    search = {
        "feature_uri": "assay://multimodal_extractor@v1/visual_embedding",
        "query": "{{INPUT.query_image}}",
        "top_k": 5,
    }
    stage = {
        "stage_name": "semantic",
        "config": {"stage_id": "feature_search", "parameters": {"searches": [search]}},
    }
    body = {
        "collection_identifiers": ["multimodal_extractor"],
        "stages": [stage],
        "inputs": {"query_image": b64(BOMB)},
    }
    r = await bucket.client.post("/v1/retrievers/execute", headers=bucket.h, json=body)
    msg = refusal(r, ["inputs", "query_image"])
    assert "30000x30000" in msg and "ASSAY_MAX_IMAGE_PIXELS" in msg


@on_module_loop
@pytest.mark.parametrize(
    ("data", "says"),
    [(TINY_LONG, "50,000,000 s"), (TINY_ENDLESS, "run past 86,400 s")],
    ids=["states-5e7-s", "states-no-duration"],
)
async def test_a_tiny_video_stating_a_huge_duration_is_422(
    bucket: Bucket, data: bytes, says: str
) -> None:
    r = await bucket.create({"property": "vid", "type": "video", "content": b64(data)})
    msg = refusal(r, ["blobs", 0])
    assert says in msg and "ASSAY_MAX_MEDIA_DURATION_S" in msg
    assert await bucket.count() == 0


@on_module_loop
async def test_a_png_as_a_video_blob_is_422(bucket: Bucket) -> None:
    r = await bucket.create({"property": "vid", "type": "video", "content": b64(png_bytes())})
    assert "an image, not a video" in refusal(r, ["blobs", 0])
    assert await bucket.count() == 0


@on_module_loop
async def test_a_small_real_video_and_image_are_still_accepted(bucket: Bucket) -> None:
    r = await bucket.create(
        {"property": "vid", "type": "video", "content": b64(small_mp4())},
        {"property": "img", "type": "image", "content": b64(png_bytes())},
    )
    assert r.status_code == 200, r.text
    assert await bucket.count() == 1


# --------------------------------------------------------------------------- media.check


def test_registration_judges_the_operators_limit_not_pillows(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(BOMB)
    # Raised past Pillow's own process-wide limit (179 MP), the operator's setting decides.
    assert media.check("image", path, limits=MediaLimits(max_image_pixels=10**9)) == "image/png"
    with pytest.raises(media.MediaError, match="ASSAY_MAX_IMAGE_PIXELS"):
        media.check("image", path, limits=MediaLimits(max_image_pixels=899_999_999))
    small = tmp_path / "small.png"
    small.write_bytes(png_bytes(size=(100, 100)))
    with pytest.raises(media.MediaError, match=r"100x100 \(10,000 pixels\)"):
        media.check("image", small, limits=MediaLimits(max_image_pixels=9_999))


def test_registration_refuses_durations_that_disagree_with_the_size(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    path.write_bytes(stating(20 * HOUR))  # under the 24-h limit, but ~0.2 bit/s
    with pytest.raises(media.MediaError, match="ASSAY_MIN_MEDIA_BITRATE_BPS"):
        media.check("video", path)
    assert media.check("video", path, limits=MediaLimits(min_media_bitrate_bps=0)).startswith(
        "video/"
    )


def test_registration_refuses_video_frames_over_the_pixel_limit(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    path.write_bytes(small_mp4())
    with pytest.raises(media.MediaError, match=r"frame of the video is 64x64"):
        media.check("video", path, limits=MediaLimits(max_image_pixels=64 * 64 - 1))


# --------------------------------------------------------------------------- extraction


def obj(kind: str, data: bytes) -> ObjectInput:
    blob = BlobInput("b0", "media", kind, f"{kind}/x", {}, data)
    return ObjectInput("o1", {}, {}, (blob,))


def test_extraction_refuses_an_image_over_the_limit_before_decoding_it() -> None:
    big = bomb_png(12_000, 12_000, 8, 2)  # the 420 KB PNG: 432 MB as RGB
    assert len(big) < 500_000
    for extractor in (ImageExtractor(), MultimodalExtractor()):
        with pytest.raises(ExtractorError) as info:
            extractor.extract(obj("image", big), {})
        assert info.value.error_type == "ImageTooLarge"
        assert "12000x12000" in info.value.message


def test_extraction_refuses_a_tiny_video_stating_a_huge_duration() -> None:
    with pytest.raises(ExtractorError) as info:
        MultimodalExtractor().extract(obj("video", TINY_LONG), {})
    assert info.value.error_type == "MediaTooLong"
    with pytest.raises(ExtractorError) as info:
        MultimodalExtractor().extract(obj("video", TINY_ENDLESS), {})
    assert info.value.error_type == "MediaTooLong"  # stopped while decoding: no stated duration


def test_extraction_refuses_a_still_image_as_video() -> None:
    with pytest.raises(ExtractorError) as info:
        MultimodalExtractor().extract(obj("video", png_bytes()), {})
    assert info.value.error_type == "MediaNotAV"


def test_big_images_are_decoded_at_a_working_size() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (6000, 4000), "navy").save(buf, format="JPEG")
    image = decode_image(buf.getvalue(), MediaLimits(), "jpeg")
    assert image.mode == "RGB" and image.size == (2048, 1365)
    palette = Image.new("P", (9000, 300))
    buf = io.BytesIO()
    palette.save(buf, format="PNG")
    image = decode_image(buf.getvalue(), MediaLimits(), "png")
    assert image.mode == "RGB" and image.width == 2048 and 67 <= image.height <= 69
