"""Chunking by characters, sentences and paragraphs: exact chunks and offset properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assay.extractors.builtin.chunking import Chunk, chunk

MODES = ("characters", "sentences", "paragraphs")
FOUR = "One two. Three four. Five six. Seven eight."


def spans(chunks: list[Chunk]) -> list[tuple[str, int, int]]:
    return [(c.text, c.start, c.end) for c in chunks]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \n"])
def test_blank_text_gives_no_chunks(mode: str, text: str) -> None:
    assert chunk(text, mode, 100, 10) == []


def test_characters_windows_step_by_size_minus_overlap() -> None:
    assert spans(chunk("abcdefghij", "characters", 4, 1)) == [
        ("abcd", 0, 4),
        ("defg", 3, 7),
        ("ghij", 6, 10),
    ]


def test_characters_trims_whitespace_and_keeps_offsets() -> None:
    assert chunk("  hello world  ", "characters", 100, 0) == [Chunk("hello world", 2, 13)]


def test_sentences_carry_trailing_sentences_that_fit_the_overlap() -> None:
    assert spans(chunk(FOUR, "sentences", 25, 12)) == [
        ("One two. Three four.", 0, 20),
        ("Three four. Five six.", 9, 30),
        ("Five six. Seven eight.", 21, 43),
    ]


def test_sentences_without_overlap_never_repeat() -> None:
    assert spans(chunk(FOUR, "sentences", 20, 0)) == [
        ("One two. Three four.", 0, 20),
        ("Five six.", 21, 30),
        ("Seven eight.", 31, 43),
    ]


def test_sentence_carry_is_dropped_when_the_next_sentence_would_not_fit() -> None:
    # "Five six." fits the overlap of 10, but with "Seven eight." it would pass 20 characters.
    assert [c.text for c in chunk(FOUR, "sentences", 20, 10)] == [
        "One two. Three four.",
        "Five six.",
        "Seven eight.",
    ]


def test_long_sentence_is_split_by_characters() -> None:
    text = "Short one. " + "x" * 50 + ". Tail here."
    chunks = chunk(text, "sentences", 20, 5)
    assert chunks[0] == Chunk("Short one.", 0, 10)
    assert chunks[-1] == Chunk("Tail here.", 63, 73)
    middle = chunks[1:-1]
    assert [c.start for c in middle] == [11, 26, 41, 56]
    assert all(set(c.text) <= {"x", "."} and len(c.text) <= 20 for c in middle)


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    # Were "Mr." or "J." sentence ends, the overlap would carry "Smith." into the second chunk.
    text = "Mr. Brown met J. Smith. Then he left."
    assert [c.text for c in chunk(text, "sentences", 25, 20)] == [
        "Mr. Brown met J. Smith.",
        "Then he left.",
    ]
    text = "Then he left... Really? Yes!"
    assert [c.text for c in chunk(text, "sentences", 15, 0)] == ["Then he left...", "Really? Yes!"]


def test_paragraphs_pack_and_fall_back_to_sentences() -> None:
    text = "Alpha beta.\n\nGamma delta.\n  \nA much longer paragraph. It has two sentences."
    assert spans(chunk(text, "paragraphs", 30, 0)) == [
        ("Alpha beta.\n\nGamma delta.", 0, 25),
        ("A much longer paragraph.", 29, 53),
        ("It has two sentences.", 54, 75),
    ]


def test_overlap_not_below_size_is_clamped_to_half() -> None:
    chunks = chunk("abcdefghij", "characters", 4, 9)
    assert [c.start for c in chunks] == [0, 2, 4, 6]
    for mode in MODES:
        assert chunk(FOUR, mode, 20, 50)  # terminates and yields chunks


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        chunk("text", "characters", 0, 0)
    with pytest.raises(ValueError):
        chunk("text", "words", 10, 0)  # type: ignore[arg-type]


_WORDS = st.sampled_from(
    ["cat", "Dr.", "e.g.", "the", "mat", "ünïcödé", "x" * 40, "a", "Yes!", "why?", "end."]
)
_GAPS = st.sampled_from([" ", " ", " ", "\n", "\n\n", "  \n \n", "\t", ". ", "... "])
TEXTS = st.lists(st.tuples(_WORDS, _GAPS), max_size=60).map(
    lambda parts: "".join(w + g for w, g in parts)
) | st.text(max_size=300)


@settings(max_examples=300, deadline=None)
@given(
    text=TEXTS,
    mode=st.sampled_from(MODES),
    size=st.integers(min_value=1, max_value=120),
    overlap=st.integers(min_value=0, max_value=150),
)
def test_chunks_cover_the_text_with_exact_offsets(
    text: str, mode: str, size: int, overlap: int
) -> None:
    chunks = chunk(text, mode, size, overlap)
    covered = [False] * len(text)
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert 0 < len(c.text) <= size
        assert c.text == c.text.strip()
        for i in range(c.start, c.end):
            covered[i] = True
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    assert [c.end for c in chunks] == sorted(c.end for c in chunks)


@settings(max_examples=100, deadline=None)
@given(text=TEXTS, mode=st.sampled_from(MODES), size=st.integers(min_value=1, max_value=120))
def test_without_overlap_chunks_are_disjoint(text: str, mode: str, size: int) -> None:
    chunks = chunk(text, mode, size, 0)
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))
