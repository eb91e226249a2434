"""`{{INPUT.x}}` in stage parameters, filled from the execution's inputs."""

from __future__ import annotations

import re
from typing import Any

# `INPUT`/`input`/`INPUTS`/`inputs`, then a dotted path.
_TEMPLATE = re.compile(r"\{\{\s*(?:INPUTS?|inputs?)\.([A-Za-z0-9_.\-]+)\s*\}\}")


def fill(value: Any, inputs: dict[str, Any]) -> Any:
    """`value` with every template replaced; a string that is only a template becomes the
    input itself (a number, a filter group, or None when the input was not given)."""
    if isinstance(value, dict):
        return {k: fill(v, inputs) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, inputs) for v in value]
    if not isinstance(value, str) or "{{" not in value:
        return value
    whole = _TEMPLATE.fullmatch(value.strip())
    if whole:
        return _lookup(inputs, whole.group(1))
    return _TEMPLATE.sub(lambda m: _text(_lookup(inputs, m.group(1))), value)


def _lookup(inputs: dict[str, Any], path: str) -> Any:
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value)
