"""Keyset pagination and the filter language, for any SQLAlchemy select.

Cursors are opaque (url-safe base64 JSON of the last row's sort key) and each page is one
indexed range query, so page 10,000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, false, not_, or_, true, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.sql.sqltypes import JSON

from assay.errors import ValidationFailed
from assay.kit.db import UTCDateTime
from assay.kit.schemas import Condition, FilterGroup

M = TypeVar("M")


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


def _compare(col: ColumnElement[Any], cond: Condition) -> ColumnElement[bool]:
    op, value = cond.operator, cond.value
    if op == "exists":
        present = _typed(col, "").isnot(None)
        return present if value in (None, True) else not_(present)
    if op in ("in", "nin"):
        if not isinstance(value, list) or not value:
            raise ValidationFailed.at(["filters", "value"], f"'{op}' needs a non-empty list")
        target = _typed(col, value[0])
        return target.in_(value) if op == "in" else target.not_in(value)
    if isinstance(value, list | dict) or value is None:
        raise ValidationFailed.at(["filters", "value"], f"'{op}' needs a scalar value")
    target = _typed(col, value)
    if op in ("contains", "starts_with"):
        text = str(value)
        return (
            target.contains(text, autoescape=True)
            if op == "contains"
            else target.startswith(text, autoescape=True)
        )
    comparisons: dict[str, Callable[[Any], ColumnElement[bool]]] = {
        "eq": target.__eq__,
        "ne": target.__ne__,
        "gt": target.__gt__,
        "gte": target.__ge__,
        "lt": target.__lt__,
        "lte": target.__le__,
    }
    return comparisons[op](value) if op in comparisons else false()
