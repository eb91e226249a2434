"""Audio and video decoding with PyAV: streamed, so a long file never sits in memory whole.

What a file states (duration, frame size) is judged against `MediaLimits` before decoding, and
what decoding finds is judged again as it goes: nothing is sized from a stated duration, since
a 1.5 KB file can state 5x10^7 s.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from assay.extractors.base import ExtractorError
from assay.kit.limits import MediaLimits, OverLimit, is_image_demuxer, stated_seconds

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

Source = bytes | str | Path | BinaryIO
SAMPLE_RATE = 16_000  # what Whisper takes
# Audio handed to Whisper at a time. Whisper's working set grows with the piece (measured:
# +172 MB for 60 s, +268 MB for 300 s); 120 s keeps a long file's peak low and cuts rarely.
AUDIO_CHUNK_SECONDS = 120
CUT_SEARCH_SECONDS = 2  # a piece ends at the quietest moment of its last seconds, not mid-word
_CUT_FRAME = SAMPLE_RATE // 50  # 20 ms
MAX_KEYFRAME_SIDE = 1280  # keyframes are shrunk to this before labels and OCR
TRUNCATED_SHARE = 0.9  # decoded video covering less of its stated duration is truncated
# Frames may run past the stated duration by this much (x2, and at least a minute) before the
# statement is taken for a lie: real files overshoot by a frame or two, not by double.
OVERRUN_FACTOR = 2
OVERRUN_MIN_S = 60


@dataclass(frozen=True)
class MediaInfo:
    """What a probe learns without decoding: duration and which streams there are."""

    duration_ms: int
    has_audio: bool
    has_video: bool


@dataclass
class Decoded:
    """How far a streaming decode got, filled in as it goes (read it after the loop)."""

    end_ms: float = 0.0  # the end of the last frame decoded
    frames: int = 0


@contextmanager
def limit_errors() -> Iterator[None]:
    """Map a limit's refusal inside the block to an ExtractorError of its kind."""
    try:
        yield
    except OverLimit as exc:
        raise ExtractorError(exc.kind, exc.message) from exc


@contextmanager
def media_errors(what: str) -> Iterator[None]:
    """Map PyAV failures inside the block to UnsupportedCodec or CorruptMedia."""
    import av

    try:
        yield
    except ExtractorError:
        raise
    except (av.error.DecoderNotFoundError, av.codec.codec.UnknownCodecError) as exc:
        raise ExtractorError(
            "UnsupportedCodec", f"{what}: no decoder for its codec: {exc}"
        ) from exc
    except (av.FFmpegError, EOFError, OSError, ValueError, IndexError) as exc:
        raise ExtractorError("CorruptMedia", f"{what} cannot be decoded: {exc}") from exc


@contextmanager
def open_media(source: Source, what: str = "media") -> Iterator[Any]:
    """An open PyAV input container over bytes, a path or a binary file."""
    import av

    with media_errors(what):
        data = io.BytesIO(source) if isinstance(source, bytes) else source
        if isinstance(data, Path):
            data = str(data)
        container = av.open(data, mode="r")
        try:
            for stream in container.streams:
                if stream.type in ("audio", "video") and stream.codec_context is None:
                    raise ExtractorError(
                        "UnsupportedCodec", f"{what}: no decoder for its {stream.type} stream"
                    )
            yield container
        finally:
            container.close()


def _duration_ms(container: Any) -> int:
    """The video stream's duration when stated, else the container's, in milliseconds."""
    for stream in container.streams.video[:1]:
        if stream.duration is not None and stream.time_base is not None:
            return round(float(stream.duration * stream.time_base) * 1000)
    if container.duration is not None:
        return round(container.duration / 1000)  # microseconds
    return 0


def probe(source: Source, what: str = "media") -> MediaInfo:
    """Duration and stream kinds of a media file, read from its headers."""
    with open_media(source, what) as c:
        return MediaInfo(_duration_ms(c), bool(c.streams.audio), bool(c.streams.video))


def admit(
    source: Source,
    limits: MediaLimits,
    what: str = "media",
    interval_s: float | None = None,
) -> None:
    """Refuse, before any decoding, media whose headers state more than `limits` admit: a
    still image (MediaNotAV), frames too large, a duration too long or too long for its size,
    or (with `interval_s`) too many windows."""
    with open_media(source, what) as container:
        _admit(container, _size_of(source), limits, what, interval_s)


def _admit(
    container: Any,
    size_bytes: int | None,
    limits: MediaLimits,
    what: str,
    interval_s: float | None = None,
    frame_size: bool = True,
) -> None:
    """`admit` on an open container; `frame_size=False` leaves its video streams' frames alone
    (an audio track's decoder never touches them: an MP3's cover art, say)."""
    if is_image_demuxer(container.format.name):
        msg = f"{what} is a still image ({container.format.name}), not audio or video"
        raise ExtractorError("MediaNotAV", msg)
    with limit_errors():
        for stream in container.streams.video if frame_size else ():
            codec = stream.codec_context
            limits.check_pixels(codec.width, codec.height, f"a frame of {what}", "FrameTooLarge")
        seconds = stated_seconds(container)
        limits.check_duration(seconds, size_bytes, what)
        if interval_s is not None and container.streams.video:
            limits.check_stated_windows(seconds, interval_s, what)


def _size_of(source: Source) -> int | None:
    """The size in bytes of what a decoder reads, when it can be known without reading it."""
    if isinstance(source, bytes):
        return len(source)
    if isinstance(source, str | Path):
        return os.stat(source).st_size
    try:
        return os.fstat(source.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


def audio_chunks(
    source: Source,
    what: str = "audio",
    chunk_seconds: int = AUDIO_CHUNK_SECONDS,
    limits: MediaLimits | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """(offset seconds, mono float32 16 kHz samples) pieces of the first audio track, in order,
    each at most `chunk_seconds` long and ending at a quiet moment; MediaTooLong once the
    samples pass the duration limit."""
    import av
    import numpy as np

    limits = limits or MediaLimits()
    size = chunk_seconds * SAMPLE_RATE
    with open_media(source, what) as container, media_errors(what):
        if not container.streams.audio:
            return
        _admit(container, _size_of(source), limits, what, frame_size=False)
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        pending: list[np.ndarray] = []
        held, emitted = 0, 0
        for frame in itertools.chain(container.decode(stream), [None]):
            for out in resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1)
                pending.append(samples)
                held += samples.size
            with limit_errors():
                limits.check_decoded((emitted + held) / SAMPLE_RATE, f"{what}'s samples")
            while held >= size or (frame is None and held):
                joined = np.concatenate(pending)
                cut = quiet_cut(joined, size) if held >= size else joined.size
                piece, rest = joined[:cut], joined[cut:]
                yield emitted / SAMPLE_RATE, piece
                emitted += piece.size
                pending, held = ([rest] if rest.size else []), rest.size


def quiet_cut(samples: np.ndarray, size: int) -> int:
    """Where a piece of `samples` no longer than `size` should end: the middle of the quietest
    20 ms of its last CUT_SEARCH_SECONDS, so a word is rarely split between two pieces."""
    import numpy as np

    start = max(0, size - CUT_SEARCH_SECONDS * SAMPLE_RATE)
    frames = (size - start) // _CUT_FRAME
    if frames < 2:
        return size
    tail = samples[start : start + frames * _CUT_FRAME].reshape(frames, _CUT_FRAME)
    energy = np.square(tail, dtype=np.float64).mean(axis=1)
    quietest = frames - 1 - int(np.argmin(energy[::-1]))  # the latest of equally quiet frames
    return start + quietest * _CUT_FRAME + _CUT_FRAME // 2


def audio_array(source: Source, what: str = "audio") -> np.ndarray:
    """A whole audio track as mono float32 16 kHz samples (for short media only)."""
    import numpy as np

    pieces = [piece for _, piece in audio_chunks(source, what)]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def window_bounds(index: int, interval_s: int, end_ms: int) -> tuple[int, int]:
    """(start_ms, end_ms) of window `index` of `interval_s` seconds, cut at `end_ms`; computed
    for one window at a time, never listed from a stated duration."""
    step = interval_s * 1000
    start = index * step
    return start, max(start, min(start + step, end_ms))


def keyframes(
    source: Source,
    interval_s: int,
    what: str = "video",
    limits: MediaLimits | None = None,
    decoded: Decoded | None = None,
) -> Iterator[tuple[int, Image.Image]]:
    """(window index, RGB image) for the first frame of every `interval_s` window, streamed.

    Refuses media over `limits` before decoding, and stops with MediaTooLong, TooManyFrames,
    TooManyWindows, FrameTooLarge or ImplausibleDuration when what decodes passes them (or runs
    far past its stated duration). Raises CorruptMedia when no frame decodes or the frames stop
    well before the stated end. `decoded`, when given, learns how far decoding got.
    """
    limits = limits or MediaLimits()
    decoded = decoded if decoded is not None else Decoded()
    with open_media(source, what) as container, media_errors(what), limit_errors():
        if not container.streams.video:
            raise ExtractorError("CorruptMedia", f"{what} has no video stream")
        _admit(container, _size_of(source), limits, what, interval_s)
        duration_ms = _duration_ms(container)
        stated_s = stated_seconds(container) or 0.0
        overrun_s = max(OVERRUN_FACTOR * stated_s, stated_s + OVERRUN_MIN_S) if stated_s else None
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frame_ms = 1000 / float(stream.average_rate or 25)
        last_window, last_ms = -1, -1.0
        for frame in container.decode(stream):
            decoded.frames += 1
            limits.check_frames(decoded.frames, what)
            # A stream may change size midway: each frame is judged, not just the header.
            limits.check_pixels(frame.width, frame.height, f"a frame of {what}", "FrameTooLarge")
            if frame.time is None:
                continue
            limits.check_decoded(frame.time, f"{what}'s frames")
            if overrun_s is not None and frame.time > overrun_s:
                raise ExtractorError(
                    "ImplausibleDuration",
                    f"{what}'s frames reach {frame.time:,.0f} s, far past the "
                    f"{stated_s:,.0f} s it states",
                )
            last_ms = frame.time * 1000
            decoded.end_ms = max(decoded.end_ms, last_ms + frame_ms)
            window = int(frame.time // interval_s)
            if window > last_window:
                limits.check_windows(window + 1, interval_s, what)
                last_window = window
                yield window, _shrunk(frame.to_image())
        if last_ms < 0:
            raise ExtractorError("CorruptMedia", f"{what}: no video frame could be decoded")
        if last_ms + frame_ms < TRUNCATED_SHARE * duration_ms:
            raise ExtractorError(
                "CorruptMedia",
                f"{what} is truncated: frames stop at {last_ms:.0f} ms of {duration_ms} ms",
            )


def _shrunk(image: Image.Image) -> Image.Image:
    """An RGB copy no larger than MAX_KEYFRAME_SIDE on its long side."""
    image = image.convert("RGB")
    if max(image.size) > MAX_KEYFRAME_SIDE:
        image.thumbnail((MAX_KEYFRAME_SIDE, MAX_KEYFRAME_SIDE))
    return image


def duration_ms(source: Source, what: str = "media") -> int:
    """A media file's stated duration in milliseconds."""
    return probe(source, what).duration_ms
