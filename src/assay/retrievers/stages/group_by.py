"""`group_by` / `deduplicate`: the best hits per value of a field (by default, per object)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from assay.retrievers.pipeline import Hit, RunContext
from assay.retrievers.values import field_value


class GroupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = "object_id"
    limit_per_group: int = Field(default=1, ge=1, le=1000)
    max_groups: int | None = Field(default=None, ge=1)


class GroupBy:
    stage_id = "group_by"
    aliases = ("deduplicate", "dedupe")
    """Keeps hit order; a hit whose field is missing forms its own group."""

    params_model = GroupParams

    def run(self, ctx: RunContext, hits: list[Hit] | None, params: Any) -> list[Hit]:
        p: GroupParams = params
        items = list(hits or [])
        docs = ctx.documents(h.doc_key for h in items)
        seen: dict[Any, int] = {}
        kept: list[Hit] = []
        for h in items:
            value = field_value(docs.get(h.doc_key), h, p.field)
            group = ("key", h.doc_key) if value is None else ("value", repr(value))
            if seen.get(group, 0) >= p.limit_per_group:
                continue
            if group not in seen and p.max_groups is not None and len(seen) >= p.max_groups:
                continue
            seen[group] = seen.get(group, 0) + 1
            kept.append(h)
        return kept
