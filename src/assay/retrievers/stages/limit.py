"""`limit`: the first `limit` hits (after `offset`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from assay.retrievers.pipeline import Hit, RunContext


class LimitParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=10, ge=0, le=100_000)
    offset: int = Field(default=0, ge=0)


class Limit:
    stage_id = "limit"
    aliases = ("take",)
    params_model = LimitParams

    def run(self, ctx: RunContext, hits: list[Hit] | None, params: Any) -> list[Hit]:
        p: LimitParams = params
        return list(hits or [])[p.offset : p.offset + p.limit]
