"""HTTP Range header parsing (single byte ranges, RFC 9110 §14)."""

from __future__ import annotations

import re

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(ValueError):
    """The range lies outside the resource."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Inclusive `(start, end)` for a single byte range, or None to send the whole body.

    Multiple ranges and malformed headers are ignored (the whole body is a valid answer);
    a well-formed range beyond the end raises `RangeNotSatisfiable`.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiable
        return max(0, size - length), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or start > end:
        raise RangeNotSatisfiable
    return start, end
