"""Text chunking by characters, sentences or paragraphs, with offsets into the original text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

SplitBy = Literal["characters", "sentences", "paragraphs"]

# A sentence ends at . ! or ? (plus closing quotes or brackets) before whitespace; a blank line
# also ends one, so headings and list items without a full stop do not glue onto what follows.
_SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s)|\n[ \t]*\n")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# Kept short on purpose: a missed abbreviation only makes one sentence shorter.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "e.g", "i.e", "cf", "fig"}
)
_WORD_BEFORE = re.compile(r"([\w.]+)$")

Span = tuple[int, int]


@dataclass(frozen=True)
class Chunk:
    """A piece of text and where it sits: `original[start:end] == text`."""

    text: str
    start: int
    end: int


def chunk(text: str, split_by: SplitBy, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Chunks of at most `chunk_size` characters, consecutive ones sharing up to the overlap."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    # The params model bounds both fields but not their relation; an overlap as large as the
    # chunk would never advance, so it is clamped rather than refused.
    overlap = max(0, chunk_overlap)
    if overlap >= chunk_size:
        overlap = chunk_size // 2
    if split_by == "characters":
        spans = _by_characters(text, (0, len(text)), chunk_size, overlap)
    elif split_by == "sentences":
        spans = _sentence_chunks(text, (0, len(text)), chunk_size, overlap)
    elif split_by == "paragraphs":
        spans = _paragraph_chunks(text, chunk_size, overlap)
    else:
        raise ValueError(f"unknown split_by {split_by!r}")
    return [Chunk(text[s:e], s, e) for s, e in spans]


def _trim(text: str, start: int, end: int) -> Span | None:
    """The span without surrounding whitespace, or None when nothing else is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _by_characters(text: str, span: Span, size: int, overlap: int) -> list[Span]:
    """Fixed windows over `span`, each trimmed of whitespace; blank windows are dropped."""
    start, stop = span
    step = size - overlap
    out: list[Span] = []
    while start < stop:
        end = min(start + size, stop)
        trimmed = _trim(text, start, end)
        if trimmed is not None and (not out or trimmed[1] > out[-1][1]):
            out.append(trimmed)
        if end == stop:
            break
        start += step
    return out


def _units(text: str, span: Span, pattern: re.Pattern[str]) -> Iterator[Span]:
    """Trimmed, non-blank pieces of `span` between matches of `pattern`."""
    start, stop = span
    cut = start
    for m in pattern.finditer(text, start, stop):
        if m.group().startswith((".", "!", "?")) and _is_abbreviation(text, m.start(), start):
            continue
        piece = _trim(text, cut, m.end())
        if piece is not None:
            yield piece
        cut = m.end()
    piece = _trim(text, cut, stop)
    if piece is not None:
        yield piece


def _is_abbreviation(text: str, dot: int, floor: int) -> bool:
    """Whether the full stop at `dot` closes an abbreviation or an initial, not a sentence."""
    if text[dot] != "." or text[dot : dot + 2] == "..":
        return False
    # Only the last few characters matter; a bounded look keeps long texts linear.
    m = _WORD_BEFORE.search(text, max(floor, dot - 8), dot)
    if m is None:
        return False
    word = m.group(1).lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _pack(
    units: Iterator[Span], size: int, overlap: int, split: Callable[[Span], list[Span]]
) -> list[Span]:
    """Whole units packed into chunks of at most `size`; units too long go through `split`."""
    out: list[Span] = []
    current: list[Span] = []
    fresh = False  # whether `current` holds a unit not yet emitted in an earlier chunk

    def flush() -> None:
        if current and fresh:
            out.append((current[0][0], current[-1][1]))

    for unit in units:
        if unit[1] - unit[0] > size:
            flush()
            out.extend(split(unit))
            current, fresh = [], False
            continue
        if current and unit[1] - current[0][0] > size:
            flush()
            # Carry the longest tail of whole units that fits in the overlap, then drop more
            # from its front until the new unit fits beside it.
            tail = current[-1][1]
            current = [u for u in current if tail - u[0] <= overlap]
            while current and unit[1] - current[0][0] > size:
                current.pop(0)
        current.append(unit)
        fresh = True
    flush()
    return out


def _sentence_chunks(text: str, span: Span, size: int, overlap: int) -> list[Span]:
    units = _units(text, span, _SENTENCE_END)
    return _pack(units, size, overlap, lambda u: _by_characters(text, u, size, overlap))


def _paragraph_chunks(text: str, size: int, overlap: int) -> list[Span]:
    units = _units(text, (0, len(text)), _PARAGRAPH_BREAK)
    # A paragraph too long for one chunk falls back to its sentences, and those to characters.
    return _pack(units, size, overlap, lambda u: _sentence_chunks(text, u, size, overlap))
