"""What one blob may cost to decode: limits an operator sets, checked before the cost is paid.

A few kilobytes can declare an image of a billion pixels or a video of a century; decoding is
where the cost is, so every decoder (registration checks, extraction, query images) asks these
limits first and refuses with a clear error instead of trying.
"""

from __future__ import annotations

from dataclasses import dataclass


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
