"""Request bodies parsed as JSON text, refusing what JSON text and the databases cannot hold.

Python's own parser accepts `NaN`, `Infinity`, `1e400` (infinity) and lone UTF-16 surrogates
(`"\\ud800"`); none of them can be written back as JSON or encoded as UTF-8, so one such value
stored in a bucket made every later answer that included it fail. Integers past 64 bits do not
fit a database integer, and U+0000 does not fit PostgreSQL text. All are refused here, at the
edge, with a 422 that names the field, before any route sees the body.

orjson parses the common case fast and refuses non-finite numbers and lone surrogates itself;
when it refuses, the standard parser tells which field is at fault. orjson reads integers past
64 bits as floats, so a body that may hold one is read again exactly: orjson keeps every
integer of up to 19 digits that is not negative (below 2^64), and every negative one of up to
18, so only a run of 20 digits or a minus sign and 19 can be one (a nanosecond timestamp in a
text is 19 digits and does not cost a second parse).
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from assay.errors import BadRequest, ValidationFailed

MAX_DEPTH = 64
_INT64 = 2**63
# Runs of digits are found in a copy of the body where every digit is "9", a minus stays and
# anything else is a space: `bytes.translate` and a substring search are C loops, where a
# regular expression for a 19-digit run tried each position of a body of numbers (60 us for a
# search body's 384 floats, ten times orjson's whole parse).
_DIGIT_SHAPE = bytes(57 if 48 <= i <= 57 else 45 if i == 45 else 32 for i in range(256))
_RUN_19 = b"9" * 19

Path = list[str | int]


def parse(body: bytes) -> Any:
    """The JSON value of a request body; 400 when it is not JSON, 422 naming a bad field."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        value = _parse_lenient(body, exc)
    else:
        shape = body.translate(_DIGIT_SHAPE)
        if _RUN_19 + b"9" in shape or b"-" + _RUN_19 in shape:
            value = _parse_lenient(body, None)  # may hold an integer orjson read as a float
        elif _RUN_19 not in shape and _nothing_to_refuse(body, value):
            # (19 digits may be an integer from 2^63 to 2^64 - 1, which orjson reads but a
            # database cannot hold: such a body takes the walk, which refuses it by value)
            return value
    problem = first_problem(value)
    if problem is not None:
        loc, msg, type_ = problem
        raise ValidationFailed.at(loc, msg, type_)
    return value


def _nothing_to_refuse(body: bytes, value: Any) -> bool:
    """Whether a body orjson read strictly can skip the walk of every value: orjson refused
    non-finite numbers and lone surrogates already (and the caller ruled out integers past 63
    bits), no text holds an escaped NUL, and it cannot nest too deep. A search body is
    hundreds of floats, which the walk visits one call each."""
    if b"\\u0000" in body:
        return False
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return True  # (brackets inside texts count too: only ever more careful)
    return _depth_within(value, 0)


def _depth_within(value: Any, depth: int) -> bool:
    """Whether no container in `value` nests past MAX_DEPTH (containers only: no scalar calls)."""
    if depth >= MAX_DEPTH:
        return False
    items = value.values() if type(value) is dict else value
    return all(_depth_within(item, depth + 1) for item in items if type(item) in (dict, list))


def _parse_lenient(body: bytes, strict_error: orjson.JSONDecodeError | None) -> Any:
    try:
        return json.loads(body)
    except RecursionError as exc:
        msg = f"nested more than {MAX_DEPTH} levels deep"
        raise ValidationFailed.at([], msg, "too_deep") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        reason = strict_error or exc
        raise BadRequest(f"request body is not valid JSON: {_describe(reason)}") from exc


def _describe(exc: Exception) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)


def first_problem(value: Any, depth: int = 0) -> tuple[Path, str, str] | None:
    """Where `value` holds something JSON text or the database cannot: (path, message, type)."""
    kind = type(value)
    if kind is str:
        problem = _text_problem(value)
        return ([], *problem) if problem else None
    if kind is float:
        if math.isfinite(value):
            return None
        return [], "NaN and Infinity are not JSON numbers", "non_finite_number"
    if kind is int:
        if -_INT64 <= value < _INT64:
            return None
        return [], "integers must fit in 64 bits (-2^63 to 2^63-1)", "integer_out_of_range"
    if kind is dict:
        items: Any = value.items()
    elif kind is list:
        items = enumerate(value)
    else:
        return None
    if depth >= MAX_DEPTH:
        return [], f"nested more than {MAX_DEPTH} levels deep", "too_deep"
    for key, item in items:
        if kind is dict and (problem := _text_problem(key)):
            return [printable(key)], f"key {problem[0]}", problem[1]
        found = first_problem(item, depth + 1)
        if found is not None:
            found[0].insert(0, printable(key) if kind is dict else key)
            return found
    return None


def _text_problem(text: str) -> tuple[str, str] | None:
    if "\x00" in text:
        return "text cannot hold U+0000 (NUL)", "nul_character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "text must be valid Unicode (it holds a lone surrogate)", "invalid_unicode"
    return None


def printable(text: str) -> str:
    """`text` as it can be sent back in JSON: lone surrogates and NUL escaped."""
    if _text_problem(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
