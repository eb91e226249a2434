"""`feature_search`: nearest neighbours of one or more queries, fused into one ranking."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assay.backends.vector.base import VectorIndexError
from assay.errors import ValidationFailed
from assay.extractors.base import canonical_feature_uri
from assay.kit.schemas import FilterGroup
from assay.retrievers.pipeline import Hit, RunContext, ranked
from assay.retrievers.queries import Query

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al.)


class QuerySpec(BaseModel):
    """The hosted form of a query: `{"input_mode": "text", "text": ...}` or an image."""

    model_config = ConfigDict(extra="allow")

    input_mode: Literal["text", "image", "content", "url", "base64", "vector", "embedding"] = "text"
    text: str | None = None
    vector: list[float] | None = None
    url: str | None = None
    value: str | None = None
    base64: str | None = None


class Search(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feature_uri: str
    query: str | list[float] | QuerySpec | None = None
    top_k: int = Field(default=100, ge=1, le=10_000)
    filters: FilterGroup | None = None
    weight: float = Field(default=1.0, ge=0)
    min_score: float | None = None

    @field_validator("feature_uri")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return canonical_feature_uri(value)


class FeatureSearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    searches: list[Search] = Field(min_length=1, max_length=10)
    fusion: Literal["rrf", "weighted", "max"] = "rrf"
    final_top_k: int = Field(default=25, ge=1, le=10_000)


class FeatureSearch:
    stage_id = "feature_search"
    aliases = ("semantic_search", "knn_search")
    params_model = FeatureSearchParams

    def run(self, ctx: RunContext, hits: list[Hit] | None, params: Any) -> list[Hit]:
        p: FeatureSearchParams = params
        rankings: list[tuple[Search, list[Hit]]] = []
        for search in p.searches:
            query = _query(ctx, search.query)
            if query is None:  # an optional input left empty: this search sits out
                continue
            rankings.append((search, self._one(ctx, hits, search, query)))
        return _fuse(rankings, p.fusion, p.final_top_k)

    def _one(self, ctx: RunContext, hits: list[Hit] | None, s: Search, query: Query) -> list[Hit]:
        allowed = ctx.candidates(s.filters, hits)
        scores: dict[int, float] = {}
        vector_cache: dict[str, Any] = {}
        for collection in ctx.collections:
            if s.feature_uri not in ctx.features_of(collection):
                continue
            # Collections sharing an extractor (and params) share the query's vector.
            cache_key = repr(sorted(collection.params.items()))
            if cache_key not in vector_cache:
                vector_cache[cache_key] = ctx.embed(s.feature_uri, query, collection.params)
            try:
                keys, sims = ctx.nearest(
                    collection.collection_id, s.feature_uri, vector_cache[cache_key], s.top_k,
                    allowed,
                )  # fmt: skip
            except VectorIndexError as exc:  # a precomputed vector of the wrong size
                raise ValidationFailed.at(["stages", "searches", "query"], str(exc)) from exc
            scores.update(zip(keys.tolist(), sims.tolist(), strict=True))
        found = ranked(scores, s.top_k)
        return [h for h in found if s.min_score is None or h.score >= s.min_score]


def _query(ctx: RunContext, raw: str | list[float] | QuerySpec | None) -> Query | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        return Query(vector=tuple(raw)) if raw else None
    if isinstance(raw, str):
        if raw in ctx.images:  # the string given as query_url / query_image
            return Query(image=ctx.images[raw])
        return Query(text=raw) if raw.strip() else None
    if raw.input_mode in ("vector", "embedding"):
        return Query(vector=tuple(raw.vector)) if raw.vector else None
    if raw.input_mode == "text":
        return Query(text=raw.text) if raw.text and raw.text.strip() else None
    ref = raw.url or raw.value or raw.base64
    if not ref:
        return None
    if ref in ctx.images:
        return Query(image=ctx.images[ref])
    return Query(image=_decode(ref))


def _decode(ref: str) -> bytes:
    payload = ref.split(",", 1)[1] if ref.startswith("data:") else ref
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed.at(
            ["stages", "searches", "query"],
            "an image query must be a URL input, base64 or a data URI",
        ) from exc


def _fuse(rankings: list[tuple[Search, list[Hit]]], fusion: str, k: int) -> list[Hit]:
    scores: dict[int, float] = {}
    for search, found in rankings:
        for rank, hit in enumerate(found):
            if fusion == "rrf":
                value = search.weight / (RRF_K + rank + 1)
                scores[hit.doc_key] = scores.get(hit.doc_key, 0.0) + value
            elif fusion == "weighted":
                value = search.weight * hit.score
                scores[hit.doc_key] = scores.get(hit.doc_key, 0.0) + value
            else:
                scores[hit.doc_key] = max(scores.get(hit.doc_key, float("-inf")), hit.score)
    if len(rankings) == 1 and fusion == "rrf":  # one search: keep its similarities as scores
        scores = {h.doc_key: h.score for h in rankings[0][1]}
    return ranked(scores, k)
