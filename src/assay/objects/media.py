"""Does a blob's content match its declared type? Pillow for images, PyAV for audio and video.

Media is judged by its headers against the operator's `MediaLimits` (pixels, duration, bitrate)
and never decoded here: a small file can state a size that would take gigabytes to decode.
"""

from __future__ import annotations

import io
import mimetypes
from pathlib import Path
from typing import Any

from PIL import Image

from assay.errors import AppError
from assay.kit import content_types, jsonbody
from assay.kit.limits import (
    MediaLimits,
    OverLimit,
    is_image_demuxer,
    open_image,
    stated_seconds,
)

GENERIC = "application/octet-stream"
_DEFAULT_TYPES = {
    "text": "text/plain",
    "json": "application/json",
    "pdf": "application/pdf",
    "binary": GENERIC,
    "excel": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

# FFmpeg demuxer names whose MIME subtype differs.
_FORMAT_SUBTYPES = {"matroska": "x-matroska", "mov": "quicktime", "mp3": "mpeg", "ogg": "ogg"}


class MediaError(ValueError):
    """The bytes are not what their blob type says."""


def check(
    blob_type: str,
    path: Path,
    declared: str | None = None,
    filename: str | None = None,
    limits: MediaLimits | None = None,
) -> str:
    """Check the file at `path` against `blob_type` and `limits`; return its content type."""
    limits = limits or MediaLimits()
    try:
        if blob_type == "image":
            return _check_image(path, limits)
        if blob_type in ("audio", "video"):
            return _check_av(path, blob_type, declared, filename, limits)
    except OverLimit as exc:
        raise MediaError(f"content refused: {exc.message}") from exc
    if blob_type == "text":
        _check_text(path)
    elif blob_type == "json":
        _check_json(path)
    elif blob_type == "pdf":
        with path.open("rb") as fh:
            if not fh.read(5).startswith(b"%PDF-"):
                raise MediaError("content is not a PDF (no %PDF- header)")
    return _usable(declared) or _guess(filename) or _DEFAULT_TYPES.get(blob_type, GENERIC)


def check_bytes(blob_type: str, data: bytes) -> str:
    """`check` for small inline text and JSON content held in memory."""
    if blob_type == "text":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MediaError("text content is not valid UTF-8") from exc
        return "text/plain"
    if blob_type == "json":
        _parse_json(data)
        return "application/json"
    raise ValueError(f"check_bytes does not handle '{blob_type}'")


def _check_image(path: Path, limits: MediaLimits) -> str:
    with path.open("rb") as fh:
        try:
            img = open_image(fh)
        except Exception as exc:  # Pillow's plugins raise many types on hostile headers
            raise MediaError(_not_an_image(exc)) from exc
        with img:
            fmt = img.format
            # The header's size, judged before anything could decode the pixels.
            limits.check_pixels(*img.size, "the image")
            try:
                img.verify()
            except Exception as exc:
                raise MediaError(_not_an_image(exc)) from exc
    return Image.MIME.get(fmt or "", GENERIC)


def _not_an_image(exc: Exception) -> str:
    return f"content is not an image Pillow can open ({type(exc).__name__})"


def _check_av(
    path: Path, blob_type: str, declared: str | None, filename: str | None, limits: MediaLimits
) -> str:
    import av  # heavy: loaded on first audio or video blob

    try:
        with av.open(str(path), mode="r", timeout=10) as container:
            format_name = container.format.name
            if is_image_demuxer(format_name):
                kind = "a video" if blob_type == "video" else "audio"
                raise MediaError(
                    f"content is an image, not {kind} (PyAV reads it as {format_name})"
                )
            streams = container.streams.video if blob_type == "video" else container.streams.audio
            if not streams:
                raise MediaError(f"content has no {blob_type} stream")
            if blob_type == "video":
                for stream in container.streams.video:
                    codec = stream.codec_context
                    if codec is not None:
                        limits.check_pixels(
                            codec.width, codec.height, "a frame of the video", "FrameTooLarge"
                        )
            seconds = stated_seconds(container)
            if seconds is None:
                seconds = _demuxed_seconds(container, limits, blob_type)
            limits.check_duration(seconds, path.stat().st_size, f"the {blob_type}")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaError(
            f"content is not {blob_type} PyAV can read ({type(exc).__name__})"
        ) from exc
    usable = _usable(declared) or _guess(filename)
    if usable and usable.startswith(f"{blob_type}/"):
        return usable
    first = format_name.split(",")[0]
    return f"{blob_type}/{_FORMAT_SUBTYPES.get(first, first)}"


def _demuxed_seconds(container: Any, limits: MediaLimits, blob_type: str) -> float | None:
    """Where the packets of a file that states no duration end, read without decoding; stops
    as soon as they pass the longest duration admitted."""
    end = 0.0
    streams = [s for s in container.streams if s.type in ("audio", "video")]
    for packet in container.demux(*streams):
        if packet.pts is None or packet.time_base is None:
            continue
        end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        limits.check_decoded(end, f"the {blob_type}'s packets")
    return end or None


def _check_text(path: Path) -> None:
    decoder = io.TextIOWrapper(path.open("rb"), encoding="utf-8", errors="strict")
    try:
        with decoder:
            while decoder.read(1 << 20):
                pass
    except UnicodeDecodeError as exc:
        raise MediaError("text content is not valid UTF-8") from exc


def _check_json(path: Path) -> None:
    _parse_json(path.read_bytes())


def _parse_json(data: bytes) -> None:
    """JSON text by the request bodies' rules: its text is indexed and served back as JSON, so
    NaN, lone surrogates, 64-bit overflow and deep nesting are refused here too."""
    try:
        jsonbody.parse(data)
    except AppError as exc:
        raise MediaError(f"content is not valid JSON ({exc.message})") from exc


def _usable(content_type: str | None) -> str | None:
    """A declared content type worth keeping: well-formed (normalised) and not the generic one."""
    normal = content_types.normalize(content_type)
    if normal is None or content_types.base_type(normal) in (GENERIC, "binary/octet-stream"):
        return None
    return normal


def _guess(filename: str | None) -> str | None:
    return mimetypes.guess_type(filename)[0] if filename else None
