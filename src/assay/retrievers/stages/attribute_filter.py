"""`attribute_filter`: keep the documents that pass the API's filter language."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from assay.kit.schemas import FilterGroup, Operator
from assay.retrievers.pipeline import Hit, RunContext


class AttributeFilterParams(BaseModel):
    """Either `filters` (a group) or one `{field, operator, value}` condition."""

    model_config = ConfigDict(extra="forbid")

    filters: FilterGroup | None = None
    field: str | None = None
    operator: Operator = "eq"
    value: Any = None
    limit: int = Field(default=1000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _one_condition_or_group(self) -> AttributeFilterParams:
        if self.filters is None and self.field is not None:
            condition = {"field": self.field, "operator": self.operator, "value": self.value}
            self.filters = FilterGroup.model_validate({"AND": [condition]})
        return self


class AttributeFilter:
    stage_id = "attribute_filter"
    aliases = ("filter",)
    params_model = AttributeFilterParams

    def run(self, ctx: RunContext, hits: list[Hit] | None, params: Any) -> list[Hit]:
        p: AttributeFilterParams = params
        allowed = ctx.allowed(p.filters, hits)
        if allowed is None:  # nothing to filter by: all hits pass
            return list(hits or [])
        if hits is None:  # the first stage: the matching documents, in key order
            return [Hit(int(k), 1.0) for k in allowed[: p.limit].tolist()]
        keep = set(allowed.tolist())
        return [h for h in hits if h.doc_key in keep]
