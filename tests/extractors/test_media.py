"""Streamed audio decoding: pieces bounded in length, cut in quiet moments, nothing lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assay.extractors.builtin import media
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
