"""Audio and video decoding with PyAV: streamed, so a long file never sits in memory whole."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from assay.extractors.base import ExtractorError

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


@dataclass(frozen=True)
class MediaInfo:
    """What a probe learns without decoding: duration and which streams there are."""

    duration_ms: int
    has_audio: bool
    has_video: bool


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


def audio_chunks(
    source: Source, what: str = "audio", chunk_seconds: int = AUDIO_CHUNK_SECONDS
) -> Iterator[tuple[float, np.ndarray]]:
    """(offset seconds, mono float32 16 kHz samples) pieces of the first audio track, in order,
    each at most `chunk_seconds` long and ending at a quiet moment."""
    import av
    import numpy as np

    size = chunk_seconds * SAMPLE_RATE
    with open_media(source, what) as container, media_errors(what):
        if not container.streams.audio:
            return
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        pending: list[np.ndarray] = []
        held, emitted = 0, 0
        for frame in itertools.chain(container.decode(stream), [None]):
            for out in resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1)
                pending.append(samples)
                held += samples.size
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


def window_bounds(duration_ms: int, interval_s: int) -> list[tuple[int, int]]:
    """(start_ms, end_ms) windows of `interval_s` seconds covering `duration_ms`."""
    step = interval_s * 1000
    return [(s, min(s + step, duration_ms)) for s in range(0, max(duration_ms, 0), step)]


def keyframes(
    source: Source, interval_s: int, what: str = "video"
) -> Iterator[tuple[int, Image.Image]]:
    """(window index, RGB image) for the first frame of every `interval_s` window, streamed.

    Raises CorruptMedia when no frame decodes or the frames stop well before the stated end.
    """
    with open_media(source, what) as container, media_errors(what):
        if not container.streams.video:
            raise ExtractorError("CorruptMedia", f"{what} has no video stream")
        duration_ms = _duration_ms(container)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        last_window, last_ms = -1, -1.0
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            last_ms = frame.time * 1000
            window = int(frame.time // interval_s)
            if window > last_window:
                last_window = window
                yield window, _shrunk(frame.to_image())
        if last_ms < 0:
            raise ExtractorError("CorruptMedia", f"{what}: no video frame could be decoded")
        frame_ms = 1000 / float(stream.average_rate or 25)
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
