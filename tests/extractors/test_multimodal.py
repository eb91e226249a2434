"""multimodal_extractor v1 on the real packaged models: espeak-ng speech, a PyAV-written video."""

from __future__ import annotations

import io
import struct
import time
import wave
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from assay.documents.drafts import DocumentDraft
from assay.extractors.base import BlobInput, ExtractorError, ObjectInput
from assay.extractors.builtin import media
from assay.extractors.builtin.catalogue import TEXT_DIM, VISUAL_DIM
from assay.extractors.builtin.multimodal import (
    TEXT_EMBEDDING_URI,
    THUMBNAIL,
    VISUAL_EMBEDDING_URI,
    MultimodalExtractor,
    thumbnail,
)
from assay.extractors.models import ModelLoadError
from assay.kit.limits import MediaLimits
from tests.media_fixtures import SPEECH, mp4, speech_track

WORD = "HELLO"
FPS, SECONDS, SPEECH_AT = 5, 25, 12


def obj(kind: str, data: bytes) -> ObjectInput:
    """An object holding one blob of `kind`."""
    blob = BlobInput("b0", "media", kind, f"{kind}/x", {"src": "test"}, data)
    return ObjectInput("o1", {"owner": "t"}, {}, (blob,))


def wav(samples: np.ndarray, rate: int = 16_000) -> bytes:
    """Mono float samples written as a 16-bit WAV by PyAV."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def make_video() -> bytes:
    """25 s of 320x240 at 5 fps: a drawn word for 12 s, then blue; the speech starts at 12 s."""
    word = Image.new("RGB", (320, 240), "white")
    ImageDraw.Draw(word).text((40, 80), WORD, fill="black", font=ImageFont.load_default(size=64))
    blue = Image.new("RGB", (320, 240), (30, 60, 200))
    audio = speech_track(SECONDS, [SPEECH_AT])
    return mp4(lambda i: word if i < SPEECH_AT * FPS else blue, audio, FPS)


@pytest.fixture(scope="module")
def video() -> bytes:
    return make_video()


@pytest.fixture(scope="module")
def audio_docs() -> list[DocumentDraft]:
    return MultimodalExtractor().extract(obj("audio", SPEECH.read_bytes()), {})


@pytest.fixture(scope="module")
def video_docs(video: bytes, audio_docs: list[DocumentDraft]) -> list[DocumentDraft]:
    from assay.extractors import vision

    vision.classifier(), vision.ocr_engine()  # models load outside the timing
    start = time.perf_counter()
    docs = MultimodalExtractor().extract(obj("video", video), {"time_split_interval": 10})
    elapsed = time.perf_counter() - start
    print(
        f"\nmultimodal video: {SECONDS / elapsed:.1f}x realtime ({elapsed:.2f} s for {SECONDS} s)"
    )
    return docs


def test_speech_fixture_is_small_and_16k() -> None:
    assert SPEECH.stat().st_size < 200_000
    assert media.probe(SPEECH.read_bytes()).duration_ms > 1000


def test_audio_transcript_and_timestamps(audio_docs: list[DocumentDraft]) -> None:
    assert audio_docs
    text = " ".join(d.content["transcript"] for d in audio_docs).lower()
    assert "fox" in text
    duration = media.probe(SPEECH.read_bytes()).duration_ms
    for doc in audio_docs:
        seg = doc.segment or {}
        assert 0 <= seg["start_ms"] < seg["end_ms"] <= duration
        assert doc.content["text"] == doc.content["transcript"]
        assert len(doc.features[TEXT_EMBEDDING_URI]) == TEXT_DIM
        assert doc.metadata == {"owner": "t", "src": "test"}


def test_video_windows(video_docs: list[DocumentDraft]) -> None:
    bounds = [(d.segment or {}).get("start_ms", -1) for d in video_docs]
    ends = [(d.segment or {}).get("end_ms", -1) for d in video_docs]
    assert list(zip(bounds, ends, strict=True)) == [(0, 10000), (10000, 20000), (20000, 25000)]
    for doc in video_docs:
        features = doc.features
        assert len(features[VISUAL_EMBEDDING_URI]) == VISUAL_DIM
        assert len(features[TEXT_EMBEDDING_URI]) == TEXT_DIM
        assert doc.content["labels"]


def test_video_speech_lands_in_its_window(video_docs: list[DocumentDraft]) -> None:
    first, second, third = video_docs
    assert "fox" in second.content["transcript"].lower()
    assert "fox" in second.content["text"].lower()
    assert "fox" not in first.content["transcript"].lower()
    assert third.content["transcript"] == ""


def test_video_first_window_ocr_reads_the_word(video_docs: list[DocumentDraft]) -> None:
    assert WORD.lower() in video_docs[0].content["ocr_text"].lower()
    assert WORD.lower() not in video_docs[2].content["ocr_text"].lower()


def test_silent_audio_fails_as_no_speech() -> None:
    silent = wav(np.zeros(3 * 16_000, dtype=np.float32))
    with pytest.raises(ExtractorError) as info:
        MultimodalExtractor().extract(obj("audio", silent), {})
    assert info.value.error_type == "NoSpeech" and "3.0 s" in info.value.message


def empty_wav() -> bytes:
    """A valid 16 kHz mono WAV header with no samples."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
    return buf.getvalue()


def test_audio_without_samples_fails_as_empty_media() -> None:
    with pytest.raises(ExtractorError) as info:
        MultimodalExtractor().extract(obj("audio", empty_wav()), {})
    assert info.value.error_type == "EmptyMedia"


def test_video_segments_carry_jpeg_thumbnails(video_docs: list[DocumentDraft]) -> None:
    for doc in video_docs:
        thumb = doc.derived_blobs[THUMBNAIL]
        assert thumb.content_type == "image/jpeg" and "thumbnail" not in doc.content
        with Image.open(io.BytesIO(thumb.data)) as im:
            assert im.format == "JPEG" and im.size == (320, 240)
            assert (thumb.width, thumb.height) == im.size


def test_thumbnails_are_at_most_320_pixels_on_their_long_side() -> None:
    wide = thumbnail(Image.new("RGB", (1280, 720), "green"))
    tall = thumbnail(Image.new("RGB", (360, 640), "green"))
    assert (wide.width, wide.height) == (320, 180)
    assert (tall.width, tall.height) == (180, 320)
    assert Image.open(io.BytesIO(wide.data)).size == (320, 180)


@pytest.mark.parametrize("kind", ["audio", "video"])
@pytest.mark.parametrize("data", [b"", np.random.default_rng(1).bytes(50_000)])
def test_garbage_is_corrupt_media(kind: str, data: bytes) -> None:
    with pytest.raises(ExtractorError) as info:
        MultimodalExtractor().extract(obj(kind, data), {})
    assert info.value.error_type == "CorruptMedia"


def test_truncated_video_is_corrupt_media(video: bytes) -> None:
    with pytest.raises(ExtractorError) as info:
        MultimodalExtractor().extract(obj("video", video[: len(video) // 2]), {})
    assert info.value.error_type == "CorruptMedia"


def test_a_missing_clip_model_path_is_a_model_load_error() -> None:
    with pytest.raises(ModelLoadError, match="/nowhere"):
        MultimodalExtractor().extract(obj("text", b"hi"), {"clip_model_path": "/nowhere"})


def test_text_and_images_use_multimodal_uris() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, format="PNG")
    text_doc, image_doc = MultimodalExtractor().extract(
        ObjectInput(
            "o2",
            {},
            {},
            (
                BlobInput("t", "body", "text", "text/plain", {}, b"A sentence about foxes."),
                BlobInput("i", "pic", "image", "image/png", {}, buf.getvalue()),
            ),
        ),
        {"ocr": False},
    )
    assert text_doc.content["text"] == "A sentence about foxes."
    assert set(text_doc.features) == {TEXT_EMBEDDING_URI}
    assert set(image_doc.features) == {TEXT_EMBEDDING_URI, VISUAL_EMBEDDING_URI}


def undated_mkv(seconds: int, fps: int = 5) -> bytes:
    """`seconds` of 64x64 Matroska video whose header states no duration (it is zeroed)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        v = out.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 64), (i * 15 % 256, 80, 0)))
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    data = bytearray(buf.getvalue())
    at = data.find(b"\x44\x89\x88")  # Segment Info's Duration: an 8-byte float
    struct.pack_into(">d", data, at + 3, 0.0)
    return bytes(data)


def test_a_video_stating_no_duration_is_windowed_up_to_its_last_frame() -> None:
    data = undated_mkv(3)
    assert media.probe(data).duration_ms == 0
    docs = MultimodalExtractor().extract(
        obj("video", data), {"time_split_interval": 1, "ocr": False}
    )
    assert [d.segment for d in docs] == [
        {"start_ms": 0, "end_ms": 1000},
        {"start_ms": 1000, "end_ms": 2000},
        {"start_ms": 2000, "end_ms": 3000},
    ]


def test_video_over_the_window_limit_fails_before_its_speech_is_transcribed(video: bytes) -> None:
    extractor = MultimodalExtractor(MediaLimits(max_video_windows=2))
    start = time.perf_counter()
    with pytest.raises(ExtractorError) as info:
        extractor.extract(obj("video", video), {"time_split_interval": 10})
    assert info.value.error_type == "TooManyWindows" and "3 windows of 10 s" in info.value.message
    assert time.perf_counter() - start < 2  # Whisper alone takes longer than that on 25 s


def test_an_image_over_the_limit_fails_alone_in_its_batch() -> None:
    def png(size: tuple[int, int]) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", size, "red").save(buf, format="PNG")
        return buf.getvalue()

    extractor = MultimodalExtractor(MediaLimits(max_image_pixels=19_999))
    objects = [obj("image", png((100, 100))), obj("image", png((200, 100)))]
    fits, too_large = extractor.extract_many(objects, {"ocr": False})
    assert isinstance(fits, list) and len(fits) == 1 and fits[0].content["labels"]
    assert isinstance(too_large, ExtractorError) and too_large.error_type == "ImageTooLarge"
    assert "200x100 (20,000 pixels)" in too_large.message
