"""`sort_attribute`: order hits by a document field (or by score)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from assay.retrievers.pipeline import Hit, RunContext
from assay.retrievers.values import field_value


class SortParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = "score"
    direction: Literal["asc", "desc"] = "desc"


class SortAttribute:
    stage_id = "sort_attribute"
    aliases = ("sort",)
    params_model = SortParams

    def run(self, ctx: RunContext, hits: list[Hit] | None, params: Any) -> list[Hit]:
        p: SortParams = params
        items = list(hits or [])
        docs = ctx.documents(h.doc_key for h in items)
        values = {h.doc_key: field_value(docs.get(h.doc_key), h, p.field) for h in items}
        present = [h for h in items if values[h.doc_key] is not None]
        missing = [h for h in items if values[h.doc_key] is None]  # always last
        present.sort(key=lambda h: _sortable(values[h.doc_key]), reverse=p.direction == "desc")
        return present + missing


def _sortable(value: Any) -> tuple[int, Any]:
    # Numbers before strings, so mixed fields sort instead of raising.
    if isinstance(value, bool | int | float):
        return (0, float(value))
    return (1, str(value))
