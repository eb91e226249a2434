"""`text_search`: BM25 over text, OCR text, transcripts and labels (FTS5 or tsvector)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from assay.kit.schemas import FilterGroup
from assay.retrievers.pipeline import Hit, RunContext


class TextSearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | None = None
    top_k: int = Field(default=100, ge=1, le=10_000)
    filters: FilterGroup | None = None


class TextSearch:
    stage_id = "text_search"
    aliases = ("full_text_search", "bm25_search")
    params_model = TextSearchParams

    def run(self, ctx: RunContext, hits: list[Hit] | None, params: Any) -> list[Hit]:
        p: TextSearchParams = params
        query = p.query if p.query is not None else ctx.inputs.get("query")
        if not isinstance(query, str) or not query.strip():
            return list(hits or [])
        ctx.may_block()  # BM25 reads every posting of the query's words
        allowed = ctx.allowed(p.filters, hits)
        found = ctx.search.text_search(ctx.collection_ids, query, p.top_k, allowed)
        return [Hit(key, score) for key, score in found]
