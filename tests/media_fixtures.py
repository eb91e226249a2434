"""Media the tests make: the committed espeak-ng speech placed in silence, and small MP4s."""

from __future__ import annotations

import io
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from assay.extractors.builtin import media

SPEECH = Path(__file__).parent / "fixtures" / "speech.wav"  # "The quick brown fox jumps ..."
RATE = 16_000
SIZE = (320, 240)


def speech_track(seconds: int, starts_s: list[int]) -> np.ndarray:
    """`seconds` of 16 kHz silence with the fixture's speech starting at each of `starts_s`."""
    speech = media.audio_array(SPEECH.read_bytes())
    audio = np.zeros(seconds * RATE, dtype=np.float32)
    for at in starts_s:
        audio[at * RATE : at * RATE + speech.size] = speech
    return audio


def mp4(frame_at: Callable[[int], Image.Image], audio: np.ndarray, fps: int) -> bytes:
    """mpeg4 320x240 at `fps` (frame i is `frame_at(i)`) + AAC mono, as long as `audio`."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        v = out.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = *SIZE, "yuv420p"
        a = out.add_stream("aac", rate=RATE, layout="mono")
        for i in range(audio.size // RATE * fps):
            frame = av.VideoFrame.from_image(frame_at(i).resize(SIZE))
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        for i, start in enumerate(range(0, audio.size, 1024)):
            piece = audio[start : start + 1024].reshape(1, -1)
            af = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = RATE, i * 1024, Fraction(1, RATE)
            out.mux(a.encode(af))
        out.mux(a.encode(None))
    return buf.getvalue()
