"""What one blob may cost to decode: limits an operator sets, checked before the cost is paid.

A few kilobytes can declare an image of a billion pixels or a video of a century; decoding is
where the cost is, so every decoder (registration checks, extraction, query images) asks these
limits first and refuses with a clear error instead of trying. The refusals are `OverLimit`,
whose `kind` is the error type an extractor reports and whose message names the setting that
raises the limit.

Reading what a file states (an image's size, a recording's duration) is done here too, through
Pillow's and PyAV's header parsers, so registration and extraction judge the same numbers.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

# The settings (environment variables) that raise each limit, named in every refusal.
PIXELS_SETTING = "ASSAY_MAX_IMAGE_PIXELS"
DURATION_SETTING = "ASSAY_MAX_MEDIA_DURATION_S"
BITRATE_SETTING = "ASSAY_MIN_MEDIA_BITRATE_BPS"
FRAMES_SETTING = "ASSAY_MAX_VIDEO_FRAMES"
WINDOWS_SETTING = "ASSAY_MAX_VIDEO_WINDOWS"
# PyAV demuxers that read a single picture: an image handed in as audio or video.
IMAGE_DEMUXERS = frozenset({"image2", "image2pipe"})


class OverLimit(ValueError):
    """A blob states (or decodes to) more than a limit admits.

    `kind` is the error type extraction reports: ImageTooLarge, FrameTooLarge, MediaTooLong,
    ImplausibleDuration, TooManyWindows or TooManyFrames.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class MediaLimits:
    """Per-blob decoding limits; the defaults are safe on a 2-core, 8 GB machine."""

    # Width x height of an image (or a video frame). 100 MP admits every camera up to medium
    # format; a 12000x12000 PNG (144 MP, 432 MB decoded) is refused.
    max_image_pixels: int = 100_000_000
    # Stated duration of one audio or video blob.
    max_media_duration_s: float = 24 * 3600
    # A stated duration must agree with the file's size: at least this many bits per second.
    # Real speech codecs need ~5,000; a 1.5 KB file stating 5x10^7 s has 0.0002.
    min_media_bitrate_bps: float = 1_000
    # Video frames decoded for one blob (24 h at 60 fps is 5.2 million).
    max_video_frames: int = 6_000_000
    # Time windows (documents) one video becomes: ceil(duration / time_split_interval).
    max_video_windows: int = 10_000

    def check_pixels(
        self, width: int, height: int, what: str = "image", kind: str = "ImageTooLarge"
    ) -> None:
        """OverLimit when a `width` x `height` picture is past max_image_pixels."""
        pixels = width * height
        if pixels > self.max_image_pixels:
            raise OverLimit(
                kind,
                f"{what} is {width}x{height} ({pixels:,} pixels), over the limit of "
                f"{self.max_image_pixels:,} pixels (setting {PIXELS_SETTING})",
            )

    def check_duration(
        self, seconds: float | None, size_bytes: int | None, what: str = "media"
    ) -> None:
        """OverLimit when a stated duration is past the maximum, or too long for the bytes that
        carry it; a missing (None or 0) duration passes, and decoding bounds itself."""
        if seconds is None or seconds == 0:
            return
        if not math.isfinite(seconds) or seconds > self.max_media_duration_s:
            raise OverLimit(
                "MediaTooLong",
                f"{what} states a duration of {seconds:,.0f} s, over the limit of "
                f"{self.max_media_duration_s:,.0f} s (setting {DURATION_SETTING})",
            )
        if size_bytes is None or seconds < 0:
            return
        bitrate = size_bytes * 8 / seconds
        if bitrate < self.min_media_bitrate_bps:
            raise OverLimit(
                "ImplausibleDuration",
                f"{what} states a duration of {seconds:,.0f} s in {size_bytes:,} bytes "
                f"({bitrate:.3g} bit/s): no real recording is below "
                f"{self.min_media_bitrate_bps:,.0f} bit/s (setting {BITRATE_SETTING})",
            )

    def check_decoded(self, seconds: float, what: str = "its frames") -> None:
        """OverLimit once decoding has reached past max_media_duration_s, whatever was stated."""
        if seconds > self.max_media_duration_s:
            raise OverLimit(
                "MediaTooLong",
                f"{what} run past {self.max_media_duration_s:,.0f} s, the limit "
                f"(setting {DURATION_SETTING})",
            )

    def check_frames(self, frames: int, what: str = "video") -> None:
        """OverLimit once more than max_video_frames frames were decoded."""
        if frames > self.max_video_frames:
            raise OverLimit(
                "TooManyFrames",
                f"{what} decodes to more than {self.max_video_frames:,} frames, the limit "
                f"(setting {FRAMES_SETTING})",
            )

    def check_windows(self, windows: int, interval_s: float, what: str = "video") -> None:
        """OverLimit when a video would become more than max_video_windows time windows."""
        if windows > self.max_video_windows:
            raise OverLimit(
                "TooManyWindows",
                f"{what} would become {windows:,} windows of {interval_s:g} s, over the limit "
                f"of {self.max_video_windows:,} (setting {WINDOWS_SETTING}; or a longer "
                "time_split_interval)",
            )

    def check_stated_windows(
        self, seconds: float | None, interval_s: float, what: str = "video"
    ) -> None:
        """`check_windows` for the windows a stated duration would be cut into."""
        if seconds and seconds > 0 and math.isfinite(seconds):
            self.check_windows(math.ceil(seconds / interval_s), interval_s, what)


def open_image(fp: IO[bytes]) -> Image.Image:
    """Pillow's lazy open of `fp` (its header: size and format; no pixel decoded), without
    Pillow's own decompression-bomb limit.

    That limit is `PIL.Image.MAX_IMAGE_PIXELS`, process-wide mutable state that is not the
    operator's setting (and warns, or raises, on its own terms); callers judge `size` with
    `MediaLimits.check_pixels` before `load()`. Raises what `PIL.Image.open` raises for bytes
    that are no image.
    """
    from PIL import Image

    image = _open_header(fp)
    if image is not None:
        return image
    fp.seek(0)
    return Image.open(fp)  # says why no plugin took it (UnidentifiedImageError)


def _open_header(fp: IO[bytes]) -> Image.Image | None:
    """The first format plugin that parses `fp`'s header, tried as `Image.open` tries them
    (acceptance by its first 16 bytes, then the plugin's own parse), less the pixel limit."""
    from PIL import Image

    Image.init()
    fp.seek(0)
    prefix = fp.read(16)
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        accepted = not accept or accept(prefix)
        if not accepted or isinstance(accepted, str):
            continue
        fp.seek(0)
        try:
            return factory(fp, "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    return None


def stated_seconds(container: Any, kinds: tuple[str, ...] = ("audio", "video")) -> float | None:
    """The longest duration a PyAV container states, for itself or any stream of `kinds`, in
    seconds; None when it states none. The longest, because any of them may be trusted later."""
    found: list[float] = []
    if container.duration is not None and container.duration > 0:
        found.append(container.duration / 1_000_000)  # AV_TIME_BASE: microseconds
    for stream in container.streams:
        if stream.type in kinds and stream.duration and stream.time_base is not None:
            found.append(float(stream.duration * stream.time_base))
    return max(found) if found else None


def is_image_demuxer(format_name: str) -> bool:
    """Whether PyAV opened the file with a still-image demuxer (`png_pipe`, `image2`, ...)."""
    names = format_name.split(",")
    return any(n in IMAGE_DEMUXERS or n.endswith("_pipe") for n in names)
