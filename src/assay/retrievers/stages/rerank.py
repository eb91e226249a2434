"""`rerank`: reorder hits by maximal marginal relevance, or by a second feature's similarity."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from assay.extractors.base import canonical_feature_uri
from assay.retrievers.pipeline import Hit, RunContext, ranked
from assay.retrievers.queries import Query


class RerankParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["mmr", "feature"] = "mmr"
    feature_uri: str = "assay://multimodal_extractor@v1/text_embedding"
    query: str | None = None
    lambda_: float = Field(default=0.5, ge=0, le=1, alias="lambda")
    top_k: int | None = Field(default=None, ge=1, le=10_000)

    @field_validator("feature_uri")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return canonical_feature_uri(value)


class Rerank:
    stage_id = "rerank"
    aliases = ("mmr",)
    params_model = RerankParams

    def run(self, ctx: RunContext, hits: list[Hit] | None, params: Any) -> list[Hit]:
        p: RerankParams = params
        items = list(hits or [])
        if not items:
            return []
        k = p.top_k or len(items)
        vectors = ctx.search.vectors([h.doc_key for h in items], p.feature_uri)
        if p.method == "feature":
            return _by_feature(ctx, items, vectors, p, k)
        return _mmr(items, vectors, p.lambda_, k)


def _by_feature(
    ctx: RunContext, items: list[Hit], vectors: dict[int, np.ndarray], p: RerankParams, k: int
) -> list[Hit]:
    text = p.query if p.query is not None else ctx.inputs.get("query")
    if not isinstance(text, str) or not text.strip():
        return items[:k]
    params = ctx.collections[0].params if ctx.collections else {}
    q = ctx.embed(p.feature_uri, Query(text=text), params)
    scores = {
        h.doc_key: float(vectors[h.doc_key] @ q) if h.doc_key in vectors else -1.0 for h in items
    }
    return ranked(scores, k)


def _mmr(items: list[Hit], vectors: dict[int, np.ndarray], lam: float, k: int) -> list[Hit]:
    """Greedy MMR: relevance (the hits' scores, scaled to 0..1) against similarity to what
    was already picked; hits without a vector keep their relevance only."""
    scores = np.asarray([h.score for h in items], dtype=np.float64)
    span = float(scores.max() - scores.min())
    relevance = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    dims = next((len(v) for v in vectors.values()), 0)
    matrix = np.zeros((len(items), dims), dtype=np.float32)
    for i, h in enumerate(items):
        if h.doc_key in vectors:
            v = vectors[h.doc_key]
            n = float(np.linalg.norm(v))
            matrix[i] = v / n if n > 0 else v
    chosen: list[int] = []
    redundancy = np.full(len(items), -np.inf)
    remaining = np.ones(len(items), dtype=bool)
    while remaining.any() and len(chosen) < k:
        penalty = np.where(np.isinf(redundancy), 0.0, redundancy)
        mmr = lam * relevance - (1 - lam) * penalty
        mmr[~remaining] = -np.inf
        best = int(np.argmax(mmr))
        chosen.append(best)
        remaining[best] = False
        redundancy = np.maximum(redundancy, matrix @ matrix[best])
    # Scores stay the hits' own: MMR decides the order, not what a hit is worth.
    return [items[i] for i in chosen]
