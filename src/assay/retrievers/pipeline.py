"""What every stage works on: hits (scored documents) and the run's context.

A pipeline is a list of stages; each takes the hits so far (None before the first stage
that produced any) and returns new ones. Stages are found by `stage_id` (or an alias) in the
registry that `assay.retrievers.stages` builds from its list of stage classes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from assay.errors import ValidationFailed
from assay.retrievers.candidates import Candidates
from assay.retrievers.indexes import FeatureIndex
from assay.retrievers.inline import RunInThread
from assay.retrievers.queries import Query, QueryEmbedder
from assay.retrievers.repository import SearchRepository


@dataclass
class Hit:
    doc_key: int
    score: float


@dataclass(frozen=True)
class SearchedCollection:
    """A collection as a search reads it."""

    collection_id: str
    extractor_name: str
    extractor_version: str
    params: dict[str, Any]


@dataclass
class RunContext:
    """One execution: the namespace's session, its collections, the inputs, the indexes."""

    session: Session
    search: SearchRepository
    collections: list[SearchedCollection]
    inputs: dict[str, Any]
    images: dict[str, bytes]  # image inputs already fetched or decoded, by the string given
    indexes: FeatureIndex
    embedder: QueryEmbedder
    features: dict[str, frozenset[str]]  # the vector feature URIs of each collection
    inline: bool = False  # on the event loop: what may take long raises `RunInThread`
    _docs: dict[int, Any] = field(default_factory=dict)  # named rows (`kit/bulk.rows`)

    def may_block(self) -> None:
        """Called before work that may take long: an inline run stops there (see `inline`)."""
        if self.inline:
            raise RunInThread

    def embed(self, feature_uri: str, query: Query, params: dict[str, Any]) -> np.ndarray:
        """The query as a unit vector of the feature's space (a model runs, except for a
        precomputed vector)."""
        if query.vector is None:
            self.may_block()
        return self.embedder.embed(feature_uri, query, params)

    def nearest(
        self, collection_id: str, feature_uri: str, query: np.ndarray, k: int,
        allowed: Candidates | None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Doc keys and similarities of the `k` nearest vectors in one collection's index."""
        return self.indexes.search(
            self.session, collection_id, feature_uri, query, k, allowed, inline=self.inline
        )

    def documents(self, keys: Iterable[int]) -> dict[int, Any]:
        """Documents by key (rows with a document's attribute names), loaded once per run."""
        missing = [k for k in keys if k not in self._docs]
        if missing:
            self._docs.update(self.search.documents_by_key(missing))
        return self._docs

    def allowed(self, filters: Any, hits: list[Hit] | None) -> np.ndarray | None:
        """Doc keys a search may return: those passing `filters` (and the run's input filters)
        among the hits so far; None when nothing restricts it."""
        candidates = self.candidates(filters, hits)
        return None if candidates is None else candidates.keys()

    def candidates(self, filters: Any, hits: list[Hit] | None) -> Candidates | None:
        """The same as `allowed`, with a filter left as SQL until someone needs its keys."""
        groups = [g for g in (filters, self.inputs.get("filters")) if g]
        if groups:
            self.may_block()  # a filter is a query over every document of the collections
        query = self.search.filter_query(self.collection_ids, groups) if groups else None
        if hits is None:
            return None if query is None else Candidates(self.session, query=query)
        prior = np.fromiter((h.doc_key for h in hits), np.uint64, len(hits))
        if query is not None:
            prior = np.intersect1d(Candidates(self.session, query=query).keys(), prior)
        return Candidates.of(prior)

    def features_of(self, collection: SearchedCollection) -> frozenset[str]:
        return self.features.get(collection.collection_id, frozenset())

    @property
    def collection_ids(self) -> list[str]:
        return [c.collection_id for c in self.collections]


class Stage(Protocol):
    """One kind of stage: its id, the other names it answers to, its parameters' model, and
    `run`. Implementations keep no state between runs (one instance serves every run)."""

    @property
    def stage_id(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...

    @property
    def params_model(self) -> type[BaseModel]: ...

    def run(self, ctx: RunContext, hits: list[Hit] | None, params: Any) -> list[Hit]:
        """The hits after this stage."""


StageRegistry = Mapping[str, Stage]
"""Stages by id and alias."""


@dataclass
class StageRun:
    stage_name: str
    stage_id: str
    input_count: int
    output_count: int
    duration_ms: float


def run_stages(
    ctx: RunContext, stages: list[dict[str, Any]], registry: StageRegistry
) -> tuple[list[Hit], list[StageRun]]:
    """Every stage in order; parameters are validated here, after templates were filled."""
    hits: list[Hit] | None = None
    stats: list[StageRun] = []
    for i, spec in enumerate(stages):
        stage_id = spec["config"]["stage_id"]
        impl = registry[stage_id]
        params = _params(impl, spec["config"].get("parameters") or {}, i)
        started = time.perf_counter()
        before = None if hits is None else len(hits)
        hits = impl.run(ctx, hits, params)
        ms = (time.perf_counter() - started) * 1000
        stats.append(StageRun(spec["stage_name"], stage_id, before or 0, len(hits), round(ms, 3)))
    return hits or [], stats


def _params(impl: Stage, raw: dict[str, Any], index: int) -> BaseModel:
    try:
        return impl.params_model.model_validate(raw)
    except ValidationError as exc:
        where = ["stages", index, "config", "parameters"]
        raise ValidationFailed(
            f"stage {index} has invalid parameters",
            [
                {"loc": [*where, *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()
            ],
        ) from exc


def ranked(scores: dict[int, float], k: int | None = None) -> list[Hit]:
    """Hits by descending score (ties by key, so results are stable), at most `k`."""
    order = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Hit(key, score) for key, score in order[:k]]
