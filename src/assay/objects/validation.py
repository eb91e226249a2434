"""An object's blobs checked against its bucket's schema (before any byte is fetched)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from assay.buckets.schemas import SCALAR_TYPES
from assay.errors import ValidationFailed
from assay.objects.schemas import ObjectCreate

Loc = tuple[str | int, ...]


def check_against_schema(
    schema: dict[str, Any], body: ObjectCreate, loc: Loc = (), *, partial: bool = False
) -> None:
    """Unknown property, wrong type, duplicate or (unless `partial`) missing required → 422."""
    props: dict[str, Any] = schema.get("properties", {})
    seen: set[str] = set()
    for i, blob in enumerate(body.blobs):
        where = (*loc, "blobs", i)
        spec = props.get(blob.property)
        if spec is None:
            known = ", ".join(sorted(props)) or "none"
            msg = f"unknown property '{blob.property}' (bucket properties: {known})"
            raise ValidationFailed.at((*where, "property"), msg, "unknown_property")
        if blob.type != spec["type"]:
            msg = f"property '{blob.property}' has type '{spec['type']}', not '{blob.type}'"
            raise ValidationFailed.at((*where, "type"), msg, "type_mismatch")
        if blob.property in seen:
            msg = f"property '{blob.property}' is given twice"
            raise ValidationFailed.at((*where, "property"), msg, "duplicate_property")
        seen.add(blob.property)
    for name, spec in props.items():
        if spec.get("required") and name not in seen and not partial:
            msg = f"missing required property '{name}'"
            raise ValidationFailed.at((*loc, "blobs"), msg, "missing_property")


def check_scalar(spec: dict[str, Any], value: Any, where: Loc) -> Any:
    """A scalar property's value checked against its type and enum; returns it normalised."""
    kind = spec["type"]
    assert kind in SCALAR_TYPES
    ok = _SCALAR_CHECKS[kind](value)
    if not ok:
        raise ValidationFailed.at(where, f"value must be of type '{kind}'", "type_mismatch")
    if spec.get("enum") is not None and value not in spec["enum"]:
        raise ValidationFailed.at(where, f"value must be one of {spec['enum']}", "enum")
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_date(v: Any) -> bool:
    try:
        dt.date.fromisoformat(v)
        return True
    except (TypeError, ValueError):
        return False


def _is_datetime(v: Any) -> bool:
    try:
        dt.datetime.fromisoformat(v)
        return True
    except (TypeError, ValueError):
        return False


_SCALAR_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "number": _is_number,
    "float": _is_number,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "date": _is_date,
    "datetime": _is_datetime,
}
