"""Keyset pagination and the filter language, for any SQLAlchemy select.

Cursors are opaque (url-safe base64 JSON of the last row's sort key) and each page is one
indexed range query, so page 10,000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    false,
    func,
    not_,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.sql.sqltypes import JSON

from assay.errors import ValidationFailed
from assay.kit.db import UTCDateTime
from assay.kit.schemas import Condition, FilterGroup

M = TypeVar("M")
MAX_IN_VALUES = 1000


@dataclass(frozen=True)
class SortKey:
    """A sortable column plus the unique id column that breaks ties."""

    column: InstrumentedAttribute[Any]
    id_column: InstrumentedAttribute[Any]
    descending: bool = True


def encode_cursor(values: Sequence[Any]) -> str:
    """Opaque cursor from the last row's sort values."""
    raw = json.dumps([v.isoformat() if isinstance(v, dt.datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, datetime_first: bool) -> list[Any]:
    """Values of an opaque cursor; a malformed one is a 422 on `cursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != 2 or not isinstance(values[1], str):
            raise ValueError
        if not isinstance(values[0], str | int | float):
            raise ValueError
        if datetime_first:
            if not isinstance(values[0], str):
                raise ValueError
            values[0] = dt.datetime.fromisoformat(values[0])
        return values
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed.at(["cursor"], "malformed cursor") from exc


def paginate(
    session: Session, stmt: Select[Any], key: SortKey, *, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of `stmt` ordered by `key`, and the cursor of the next page (None at the end)."""
    col, id_col = key.column, key.id_column
    is_time = isinstance(col.type, UTCDateTime)
    if cursor:
        last = decode_cursor(cursor, datetime_first=is_time)
        if col is id_col:
            cond = id_col < last[1] if key.descending else id_col > last[1]
        else:
            pair, bound = tuple_(col, id_col), tuple_(*last)
            cond = pair < bound if key.descending else pair > bound
        stmt = stmt.where(cond)
    order = (col.desc(), id_col.desc()) if key.descending else (col.asc(), id_col.asc())
    rows = list(session.scalars(stmt.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last_row = rows[-1]
    return rows, encode_cursor([getattr(last_row, col.key), getattr(last_row, id_col.key)])


def count_all(session: Session, stmt: Select[Any]) -> int:
    """How many rows `stmt` selects (for the `total_count` of small, scoped lists)."""
    return int(
        session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    )


Resolver = Callable[[str], ColumnElement[Any] | None]


def build_filter(group: FilterGroup | None, resolve: Resolver) -> ColumnElement[bool]:
    """A SQL condition for the API's filter language; `resolve` maps a field name to a column."""
    if group is None:
        return true()
    parts: list[ColumnElement[bool]] = []
    if group.and_:
        parts.append(and_(*(_one(item, resolve) for item in group.and_)))
    if group.or_:
        parts.append(or_(*(_one(item, resolve) for item in group.or_)))
    return and_(*parts) if parts else true()


def _one(item: Condition | FilterGroup, resolve: Resolver) -> ColumnElement[bool]:
    if isinstance(item, FilterGroup):
        return build_filter(item, resolve)
    col = resolve(item.field)
    if col is None:
        raise ValidationFailed.at(["filters", "field"], f"unknown filter field '{item.field}'")
    return _compare(col, item)


def _typed(col: ColumnElement[Any], value: Any) -> ColumnElement[Any]:
    """JSON elements are compared as the type of the value they are compared with."""
    if not isinstance(col, BinaryExpression) or not isinstance(col.type, JSON):
        return col
    json_col: Any = col
    if isinstance(value, bool):
        return json_col.as_boolean()
    if isinstance(value, int | float):
        return json_col.as_float()
    return json_col.as_string()


_VALUE = ["filters", "value"]
_INT64 = 2**63


def _kind(value: Any) -> str | None:
    """`string`, `number` or `boolean` for a value a filter may compare with; None otherwise."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "number" if -_INT64 <= value < _INT64 else None
    if isinstance(value, float):
        return "number" if math.isfinite(value) else None
    return "string" if isinstance(value, str) else None


def _checked(col: ColumnElement[Any], field: str, value: Any) -> Any:
    """`value` as the column `field` compares with, or a 422 saying what it must be.

    A timestamp column takes RFC 3339 text; a text column takes text; a JSON element takes a
    string, a number (within 64 bits) or a boolean. Anything else would reach the database as
    a value it cannot bind or compare, and fail there as a 500.
    """
    kind = _kind(value)
    if isinstance(col.type, UTCDateTime):
        try:
            moment = dt.datetime.fromisoformat(value) if kind == "string" else None
        except ValueError:
            moment = None
        if moment is None:
            msg = f"'{field}' compares with an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"
            raise ValidationFailed.at(_VALUE, msg, "type_mismatch")
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if isinstance(col.type, JSON):
        if kind is None:
            msg = f"'{field}' compares with a string, a 64-bit number or a boolean"
            raise ValidationFailed.at(_VALUE, msg, "type_mismatch")
        return value
    expected = _column_kind(col)
    if expected is not None and kind != expected:
        raise ValidationFailed.at(_VALUE, f"'{field}' compares with a {expected}", "type_mismatch")
    return value


def _column_kind(col: ColumnElement[Any]) -> str | None:
    """What a plain column holds, as `_kind` names it."""
    try:
        python_type = col.type.python_type
    except NotImplementedError:
        return None
    if python_type is bool:
        return "boolean"
    return {str: "string", int: "number", float: "number"}.get(python_type)


def _compare(col: ColumnElement[Any], cond: Condition) -> ColumnElement[bool]:
    op, value, field = cond.operator, cond.value, cond.field
    if op == "exists":
        if value not in (None, True, False):
            raise ValidationFailed.at(_VALUE, "'exists' takes true, false or nothing")
        present = _typed(col, "").isnot(None)
        return present if value in (None, True) else not_(present)
    if op in ("in", "nin"):
        if not isinstance(value, list) or not value or len(value) > MAX_IN_VALUES:
            msg = f"'{op}' needs a list of 1 to {MAX_IN_VALUES} values"
            raise ValidationFailed.at(_VALUE, msg)
        values = [_checked(col, field, v) for v in value]
        if len({_kind(v) for v in value}) > 1:
            msg = f"the values of '{op}' must all be strings, all numbers or all booleans"
            raise ValidationFailed.at(_VALUE, msg, "type_mismatch")
        target = _typed(col, value[0])
        return target.in_(values) if op == "in" else target.not_in(values)
    if isinstance(value, list | dict) or value is None:
        raise ValidationFailed.at(_VALUE, f"'{op}' needs a scalar value")
    if op in ("contains", "starts_with"):
        if not isinstance(value, str):
            raise ValidationFailed.at(_VALUE, f"'{op}' needs a string", "type_mismatch")
        target = _typed(col, value)
        return (
            target.contains(value, autoescape=True)
            if op == "contains"
            else target.startswith(value, autoescape=True)
        )
    value = _checked(col, field, value)
    target = _typed(col, value)
    comparisons: dict[str, Callable[[Any], ColumnElement[bool]]] = {
        "eq": target.__eq__,
        "ne": target.__ne__,
        "gt": target.__gt__,
        "gte": target.__ge__,
        "lt": target.__lt__,
        "lte": target.__le__,
    }
    return comparisons[op](value) if op in comparisons else false()
