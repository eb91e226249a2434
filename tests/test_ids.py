"""Ids: prefixed, time-sortable, base62."""

from __future__ import annotations

import random
import time

from assay.kit.ids import _ALPHABET, _base62, has_prefix, new_id, random_base62


def _digit_by_digit(n: int, width: int) -> str:
    chars = []
    for _ in range(width):
        n, r = divmod(n, 62)
        chars.append(_ALPHABET[r])
    return "".join(reversed(chars))


def test_base62_writes_the_last_width_digits_of_any_number() -> None:
    rng = random.Random(5)
    for width in (1, 2, 3, 8, 12, 21, 40):
        for bits in (0, 6, 48, 71, 240):
            for _ in range(200):
                n = rng.getrandbits(bits) if bits else 0
                assert _base62(n, width) == _digit_by_digit(n, width)


def test_ids_carry_their_prefix_and_sort_by_creation_time() -> None:
    first = new_id("obj")
    time.sleep(0.002)
    later = [new_id("obj") for _ in range(50)]
    assert all(has_prefix(i, "obj") and set(i[4:]) <= set(_ALPHABET) for i in [first, *later])
    assert all(first < i for i in later)
    assert len(set(later)) == 50  # the same millisecond's ids differ in their random part
    assert len(random_base62(40)) == 40


def test_random_characters_are_uniform_over_the_alphabet() -> None:
    # Bytes of 248 and more are dropped, so no character is likelier than another (a byte
    # taken modulo 62 would make the first 8 a quarter likelier than the rest).
    drawn = "".join(random_base62(40) for _ in range(5_000))
    counts = {c: drawn.count(c) for c in _ALPHABET}
    expected = len(drawn) / 62
    assert set(drawn) == set(_ALPHABET)
    assert all(abs(n - expected) < 0.1 * expected for n in counts.values()), counts
    assert {len(random_base62(n)) for n in (1, 12, 40, 200)} == {1, 12, 40, 200}
