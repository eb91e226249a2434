"""Retriever use-cases: saved pipelines, and running one (saved or ad hoc) over collections."""

from __future__ import annotations

import base64
import binascii
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from assay.collections.repository import CollectionRepository
from assay.errors import AlreadyExists, NotFound, ValidationFailed
from assay.extractors.registry import ExtractorRegistry
from assay.kit import bulk
from assay.kit.db import table_of
from assay.kit.fetch import FetchError, FetchPolicy, fetch_to_file
from assay.kit.ids import new_id
from assay.kit.paging import SortKey, decode_cursor, encode_cursor, paginate
from assay.kit.schemas import FilterGroup
from assay.kit.scratch import process_folder
from assay.models import Collection, Retriever
from assay.retrievers.indexes import FeatureIndex
from assay.retrievers.pipeline import RunContext, SearchedCollection, run_stages
from assay.retrievers.queries import QueryEmbedder
from assay.retrievers.repository import RetrieverRepository, SearchRepository
from assay.retrievers.schemas import (
    ExecuteOut,
    ExecutionPagination,
    ResultOut,
    RetrieverCreate,
    RetrieverCreated,
    RetrieverDefinition,
    RetrieverOut,
    StageStat,
)
from assay.retrievers.stages import STAGES
from assay.retrievers.templates import fill


@dataclass
class Searcher:
    """What running a pipeline needs beyond the database: the indexes and the query models."""

    registry: ExtractorRegistry
    indexes: FeatureIndex
    embedder: QueryEmbedder


@dataclass(frozen=True)
class Plan:
    """A pipeline to run: its collections (ids, checked) and stages (as stored)."""

    collection_ids: list[str]
    stages: list[dict[str, Any]]
    retriever_id: str | None = None  # a saved retriever's; None for an inline definition


def create(session: Session, namespace_id: str, body: RetrieverCreate) -> RetrieverCreated:
    repo = RetrieverRepository(session, namespace_id)
    if repo.get_by_ident(body.retriever_name) is not None:
        raise AlreadyExists(f"a retriever named '{body.retriever_name}' already exists")
    plan = check_definition(session, namespace_id, body)
    retriever = repo.add(
        Retriever(
            retriever_id=new_id("ret"),
            namespace_id=namespace_id,
            retriever_name=body.retriever_name,
            description=body.description,
            collection_ids=plan.collection_ids,
            input_schema=body.input_schema,
            stages=plan.stages,
        )
    )
    out = to_out(retriever, body.warnings() + [w for s in body.stages for w in s.warnings()])
    return RetrieverCreated(**out.model_dump(), retriever=out.model_dump(mode="json"))


def check_definition(session: Session, namespace_id: str, body: RetrieverDefinition) -> Plan:
    """The collections resolved (422 naming an unknown one) and every stage id known."""
    repo = CollectionRepository(session, namespace_id)
    ids: list[str] = []
    for i, ident in enumerate(body.collection_identifiers):
        collection = repo.get_by_ident(ident)
        if collection is None:
            raise ValidationFailed.at(
                ["collection_identifiers", i], f"collection '{ident}' not found"
            )
        ids.append(collection.collection_id)
    for i, s in enumerate(body.stages):
        if s.config.stage_id not in STAGES:
            raise ValidationFailed.at(
                ["stages", i, "config", "stage_id"],
                f"unknown stage '{s.config.stage_id}'; available: {', '.join(sorted(STAGES))}",
            )
    stages = [s.model_dump(include={"stage_name", "stage_type", "config"}) for s in body.stages]
    return Plan(ids, stages)


def get_retriever(session: Session, namespace_id: str, ident: str) -> Retriever:
    retriever = RetrieverRepository(session, namespace_id).get_by_ident(ident)
    if retriever is None:
        raise NotFound(f"retriever '{ident}' not found")
    return retriever


def get(session: Session, namespace_id: str, ident: str) -> RetrieverOut:
    return to_out(get_retriever(session, namespace_id, ident))


def list_page(
    session: Session, namespace_id: str, *, limit: int, cursor: str | None
) -> tuple[list[RetrieverOut], str | None]:
    stmt = RetrieverRepository(session, namespace_id).scoped()
    key = SortKey(Retriever.created_at, Retriever.retriever_id, descending=True)
    rows, nxt = paginate(session, stmt, key, limit=limit, cursor=cursor)
    return [to_out(r) for r in rows], nxt


def delete(session: Session, namespace_id: str, ident: str) -> str:
    retriever = get_retriever(session, namespace_id, ident)
    RetrieverRepository(session, namespace_id).delete(retriever)
    return retriever.retriever_id


def plan_of(session: Session, namespace_id: str, ident: str) -> Plan:
    row = RetrieverRepository(session, namespace_id).plan_row(ident)
    if row is None:
        raise NotFound(f"retriever '{ident}' not found")
    return Plan(list(row.collection_ids), list(row.stages), row.retriever_id)


async def load_images(
    inputs: dict[str, Any], policy: FetchPolicy, scratch_root: Path
) -> dict[str, bytes]:
    """Image inputs as bytes, keyed by the string given: `query_url` fetched through the
    SSRF guard, `query_image` decoded from base64 or a data URI."""
    images: dict[str, bytes] = {}
    url = inputs.get("query_url")
    if isinstance(url, str) and url:
        with tempfile.TemporaryDirectory(dir=process_folder(scratch_root)) as folder:
            try:
                fetched = await fetch_to_file(url, Path(folder), policy)
            except FetchError as exc:
                raise ValidationFailed.at(["inputs", "query_url"], str(exc)) from exc
            images[url] = fetched.path.read_bytes()
    raw = inputs.get("query_image")
    if isinstance(raw, str) and raw:
        payload = raw.split(",", 1)[1] if raw.startswith("data:") else raw
        try:
            images[raw] = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValidationFailed.at(
                ["inputs", "query_image"], "query_image must be base64 or a data URI"
            ) from exc
    return images


def execute(
    session: Session,
    searcher: Searcher,
    namespace_id: str,
    plan: Plan,
    inputs: dict[str, Any],
    images: dict[str, bytes],
    *,
    limit: int,
    cursor: str | None,
    inline: bool = False,
) -> ExecuteOut:
    """Run the stages and answer one page of what they found. `inline`: on the event loop,
    raising `RunInThread` before any work that may take long (see `retrievers.inline`)."""
    offset = _offset(cursor)
    collections = _collections(session, namespace_id, plan.collection_ids)
    if inputs.get("filters") is not None:
        inputs["filters"] = FilterGroup.model_validate(inputs["filters"])
    ctx = RunContext(
        session=session,
        search=SearchRepository(session, namespace_id),
        collections=collections,
        inputs=inputs,
        images=images,
        indexes=searcher.indexes,
        embedder=searcher.embedder,
        features={c.collection_id: _features(searcher.registry, c) for c in collections},
        inline=inline,
    )
    hits, runs = run_stages(ctx, fill(plan.stages, _template_inputs(inputs)), STAGES)
    page = hits[offset : offset + limit]
    docs = ctx.documents(h.doc_key for h in page)
    results = [_result(docs[h.doc_key], h.score) for h in page if h.doc_key in docs]
    nxt = encode_cursor([offset + limit, "o"]) if offset + limit < len(hits) else None
    return ExecuteOut(
        execution_id=new_id("exec"),
        retriever_id=plan.retriever_id,
        results=results,
        stage_stats=[StageStat(**vars(r)) for r in runs],
        pagination=ExecutionPagination(limit=limit, next_cursor=nxt, total_count=len(hits)),
        duration_ms=round(sum(r.duration_ms for r in runs), 3),
    )


def _collections(session: Session, namespace_id: str, ids: list[str]) -> list[SearchedCollection]:
    """The plan's collections still there (a deleted one is skipped); none named: all. Read
    as table rows: a search only reads them."""
    if not ids:
        rows = bulk.rows(session, _ALL_COLLECTIONS, {"ns": namespace_id})
        return [SearchedCollection(*row) for row in rows]
    rows = bulk.rows(session, _PLAN_COLLECTIONS, {"ns": namespace_id, "ids": list(ids)})
    found = {row.collection_id: SearchedCollection(*row) for row in rows}
    return [found[i] for i in ids if i in found]


_COLLECTIONS = table_of(Collection)
_ALL_COLLECTIONS = (
    select(*(_COLLECTIONS.c[f.name] for f in fields(SearchedCollection)))
    .where(_COLLECTIONS.c.namespace_id == bindparam("ns"))
    .order_by(_COLLECTIONS.c.collection_id)
)
# A saved plan holds collection ids (checked when it was saved); one prebuilt query for all.
_PLAN_COLLECTIONS = _ALL_COLLECTIONS.where(
    _COLLECTIONS.c.collection_id.in_(bindparam("ids", expanding=True))
)


def _features(registry: ExtractorRegistry, c: SearchedCollection) -> frozenset[str]:
    spec = registry.get(c.extractor_name, c.extractor_version)
    return frozenset(spec.feature_uri(o.name) for o in spec.outputs if o.type == "vector")


def _template_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    filters = inputs.get("filters")
    if isinstance(filters, FilterGroup):
        return {**inputs, "filters": filters.model_dump(by_alias=True, exclude_none=True)}
    return inputs


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    values = decode_cursor(cursor, datetime_first=False)
    if not isinstance(values[0], int) or values[0] < 0:
        raise ValidationFailed.at(["cursor"], "malformed cursor")
    return values[0]


def _result(doc: Any, score: float) -> ResultOut:
    return ResultOut(
        document_id=doc.document_id,
        collection_id=doc.collection_id,
        score=round(score, 6),
        source={
            "object_id": doc.object_id,
            "blob_id": doc.blob_id,
            "property": doc.property,
            "segment": doc.segment,
        },
        content=doc.content,
        metadata=doc.metadata_,
    )


def to_out(r: Retriever, warnings: list[str] | None = None) -> RetrieverOut:
    return RetrieverOut(
        retriever_id=r.retriever_id,
        retriever_name=r.retriever_name,
        description=r.description,
        collection_ids=list(r.collection_ids),
        input_schema=r.input_schema,
        stages=list(r.stages),
        created_at=r.created_at,
        updated_at=r.updated_at,
        warnings=warnings or [],
    )


def stage_catalogue() -> list[dict[str, Any]]:
    """Every stage with its aliases and parameter schema (`GET /v1/retrievers/stages`)."""
    entries: dict[str, dict[str, Any]] = {}
    for name, impl in STAGES.items():
        stage_id = impl.stage_id
        entry = entries.setdefault(
            stage_id,
            {
                "stage_id": stage_id,
                "aliases": [],
                "description": (sys.modules[type(impl).__module__].__doc__ or "").strip(),
                "parameter_schema": impl.params_model.model_json_schema(),
            },
        )
        if name != stage_id:
            entry["aliases"].append(name)
    return sorted(entries.values(), key=lambda e: e["stage_id"])
