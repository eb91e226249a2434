"""Streamed audio and video decoding: audio pieces bounded in length, cut in quiet moments,
nothing lost; what decodes bounded by `MediaLimits`, before and while decoding."""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from assay.extractors.base import ExtractorError
from assay.extractors.builtin import media
from assay.kit.limits import MediaLimits
from tests.extractors.test_multimodal import wav

RATE = media.SAMPLE_RATE


def tone(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE), dtype=np.float32) / RATE
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_quiet_cut_ends_a_piece_inside_the_pause_before_its_limit() -> None:
    # 3 s of tone, 0.3 s of silence at 3.0-3.3 s, then tone: a 4-s limit cuts in the pause.
    samples = np.concatenate([tone(3.0), np.zeros(int(0.3 * RATE), np.float32), tone(2.0)])
    cut = media.quiet_cut(samples, 4 * RATE)
    assert 3.0 * RATE <= cut <= 3.3 * RATE


def test_quiet_cut_without_a_pause_stays_within_the_limit() -> None:
    cut = media.quiet_cut(tone(6.0), 4 * RATE)
    assert (4 - media.CUT_SEARCH_SECONDS) * RATE <= cut <= 4 * RATE


def test_audio_chunks_are_bounded_cut_in_pauses_and_lose_nothing(tmp_path: Path) -> None:
    pause = np.zeros(int(0.4 * RATE), np.float32)
    samples = np.concatenate([tone(2.5), pause, tone(2.5), pause, tone(1.0)])  # 6.8 s
    path = tmp_path / "a.wav"
    path.write_bytes(wav(samples))
    pieces = list(media.audio_chunks(path, chunk_seconds=3))
    offsets = [offset for offset, _ in pieces]
    lengths = [piece.size for _, piece in pieces]
    assert all(n <= 3 * RATE for n in lengths)
    assert sum(lengths) == samples.size
    assert offsets == [sum(lengths[:i]) / RATE for i in range(len(pieces))]
    # Each cut lands in a pause: 2.5-2.9 s, then 5.4-5.8 s.
    assert 2.5 <= offsets[1] <= 2.9 and 5.4 <= offsets[2] <= 5.8
    joined = np.concatenate([piece for _, piece in pieces])
    assert np.abs(joined - samples).max() < 1e-3  # 16-bit PCM round trip


# --------------------------------------------------------------------------- limits


def short_video(seconds: int = 3, fps: int = 5) -> bytes:
    """`seconds` of 64x64 mpeg4 at `fps`, no audio."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        v = out.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 64), (i * 9 % 256, 90, 30)))
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return buf.getvalue()


def refusal(limits: MediaLimits, data: bytes, interval_s: int = 1) -> ExtractorError:
    with pytest.raises(ExtractorError) as info:
        list(media.keyframes(data, interval_s, "video blob v", limits))
    return info.value


def test_keyframes_of_a_valid_video_one_per_window_with_decoded_end() -> None:
    decoded = media.Decoded()
    found = list(media.keyframes(short_video(), 1, "v", MediaLimits(), decoded))
    assert [i for i, _ in found] == [0, 1, 2]
    assert all(image.size == (64, 64) for _, image in found)
    assert decoded.frames == 15 and decoded.end_ms == pytest.approx(3000)


@pytest.mark.parametrize(
    ("limits", "error_type", "says"),
    [
        (MediaLimits(max_media_duration_s=2), "MediaTooLong", "ASSAY_MAX_MEDIA_DURATION_S"),
        (MediaLimits(min_media_bitrate_bps=10**7), "ImplausibleDuration", "bit/s"),
        (MediaLimits(max_video_windows=2), "TooManyWindows", "3 windows of 1 s"),
        (MediaLimits(max_video_frames=10), "TooManyFrames", "ASSAY_MAX_VIDEO_FRAMES"),
        (MediaLimits(max_image_pixels=4095), "FrameTooLarge", "64x64"),
    ],
    ids=["duration", "bitrate", "windows", "frames", "frame-size"],
)
def test_keyframes_refuse_what_the_limits_do_not_admit(
    limits: MediaLimits, error_type: str, says: str
) -> None:
    error = refusal(limits, short_video())
    assert error.error_type == error_type and says in error.message


def test_a_video_stating_a_huge_duration_fails_before_decoding_a_frame() -> None:
    from tests.test_media_limits import TINY_ENDLESS, TINY_LONG

    assert refusal(MediaLimits(), TINY_LONG).error_type == "MediaTooLong"
    # Stating none, its second frame sits 4.3x10^8 s in: decoding stops there.
    decoded = media.Decoded()
    with pytest.raises(ExtractorError) as info:
        list(media.keyframes(TINY_ENDLESS, 10, "v", MediaLimits(), decoded))
    assert info.value.error_type == "MediaTooLong" and decoded.frames == 2


def sparse_mkv(times_s: list[int], stated_s: float) -> bytes:
    """A Matroska video whose frames sit at `times_s`, its header patched to state `stated_s`."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        v = out.add_stream("mpeg4", rate=1)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        for t in times_s:
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 64), "teal"))
            frame.pts, frame.time_base = t, Fraction(1, 1)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    data = bytearray(buf.getvalue())
    at = data.find(b"\x44\x89\x88")  # Segment Info's Duration: an 8-byte float, in ms
    assert at > 0
    struct.pack_into(">d", data, at + 3, stated_s * 1000)
    return bytes(data)


def test_frames_running_far_past_the_stated_duration_are_implausible() -> None:
    data = sparse_mkv([0, 100, 200, 300], stated_s=1)
    with av.open(io.BytesIO(data)) as c:
        assert c.duration == 1_000_000  # the header's word, in microseconds
    decoded = media.Decoded()
    with pytest.raises(ExtractorError) as info:
        list(media.keyframes(data, 10, "v", MediaLimits(), decoded))
    assert info.value.error_type == "ImplausibleDuration" and decoded.frames == 2
    # Told the truth, the same frames are four windows (once so few bits a second are allowed).
    honest = sparse_mkv([0, 100, 200, 300], stated_s=301)
    sparse_ok = MediaLimits(min_media_bitrate_bps=0)
    assert [i for i, _ in media.keyframes(honest, 10, "v", sparse_ok)] == [0, 10, 20, 30]


def test_audio_stops_past_the_duration_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(wav(tone(3.0)))
    with pytest.raises(ExtractorError) as info:
        list(media.audio_chunks(path, "audio blob a", limits=MediaLimits(max_media_duration_s=2)))
    assert info.value.error_type == "MediaTooLong"
    # A stated duration under the limit passes the header check; the samples are counted anyway.
    with pytest.raises(ExtractorError) as info:
        list(media.audio_chunks(path, "a", 1, MediaLimits(max_media_duration_s=2.5)))
    assert info.value.error_type == "MediaTooLong"
    assert sum(p.size for _, p in media.audio_chunks(path, limits=MediaLimits())) == 3 * RATE


def test_window_bounds_are_computed_one_window_at_a_time() -> None:
    assert media.window_bounds(0, 10, 25_000) == (0, 10_000)
    assert media.window_bounds(2, 10, 25_000) == (20_000, 25_000)
    assert media.window_bounds(5, 10, 25_000) == (50_000, 50_000)  # past the end: empty
