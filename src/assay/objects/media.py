"""Does a blob's content match its declared type? Pillow for images, PyAV for audio and video."""

from __future__ import annotations

import io
import json
import mimetypes
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from assay.kit import content_types

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
    blob_type: str, path: Path, declared: str | None = None, filename: str | None = None
) -> str:
    """Check the file at `path` against `blob_type`; return its content type."""
    if blob_type == "image":
        return _check_image(path)
    if blob_type in ("audio", "video"):
        return _check_av(path, blob_type, declared, filename)
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


def _check_image(path: Path) -> str:
    try:
        with Image.open(path) as img:
            fmt = img.format
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"content is not an image Pillow can open ({type(exc).__name__})") from exc
    return Image.MIME.get(fmt or "", GENERIC)


def _check_av(path: Path, blob_type: str, declared: str | None, filename: str | None) -> str:
    import av  # heavy: loaded on first audio or video blob

    try:
        with av.open(str(path), mode="r", timeout=10) as container:
            streams = container.streams.video if blob_type == "video" else container.streams.audio
            if not streams:
                raise MediaError(f"content has no {blob_type} stream")
            format_name = container.format.name
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaError(
            f"content is not {blob_type} PyAV can read ({type(exc).__name__})"
        ) from exc
    usable = _usable(declared) or _guess(filename)
    if usable and usable.startswith(f"{blob_type}/"):
        return usable
    first = format_name.split(",")[0]
    return f"{blob_type}/{_FORMAT_SUBTYPES.get(first, first)}"


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
    try:
        json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MediaError(f"content is not valid JSON ({exc})") from exc


def _usable(content_type: str | None) -> str | None:
    """A declared content type worth keeping: well-formed (normalised) and not the generic one."""
    normal = content_types.normalize(content_type)
    if normal is None or content_types.base_type(normal) in (GENERIC, "binary/octet-stream"):
        return None
    return normal


def _guess(filename: str | None) -> str | None:
    return mimetypes.guess_type(filename)[0] if filename else None
