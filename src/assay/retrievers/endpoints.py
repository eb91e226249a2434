"""Retrievers over HTTP: saved pipelines, and running them (saved or ad hoc)."""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from assay.deps import PageQuery, ReadScope, WriteScope
from assay.kit.routing import DirectJsonRoute, StrictJsonRoute
from assay.kit.schemas import ListRequest, Page, Pagination
from assay.retrievers import service
from assay.retrievers.inline import RunInThread
from assay.retrievers.schemas import (
    AdhocExecuteRequest,
    ExecuteOut,
    ExecuteRequest,
    RetrieverCreate,
    RetrieverCreated,
    RetrieverDeleted,
    RetrieverOut,
)

router = APIRouter(prefix="/v1/retrievers", tags=["retrievers"], route_class=StrictJsonRoute)


@router.post("", response_model=RetrieverCreated)
async def create_retriever(body: RetrieverCreate, scope: WriteScope) -> RetrieverCreated:
    """Save a pipeline of stages over some collections (none named: all of the namespace)."""
    return await scope.ctx.db.write(lambda s: service.create(s, scope.namespace_id, body))


@router.get("", response_model=Page[RetrieverOut])
async def list_retrievers(scope: ReadScope, page: PageQuery) -> Page[RetrieverOut]:
    """Retrievers of the namespace, newest first."""
    return await _list(scope, page.limit, page.cursor)


@router.post("/list", response_model=Page[RetrieverOut])
async def list_retrievers_post(body: ListRequest, scope: ReadScope) -> Page[RetrieverOut]:
    """The hosted product's list form."""
    return await _list(scope, body.limit, body.cursor)


async def _list(scope: ReadScope, limit: int, cursor: str | None) -> Page[RetrieverOut]:
    rows, nxt = await scope.ctx.db.read(
        lambda s: service.list_page(s, scope.namespace_id, limit=limit, cursor=cursor)
    )
    return Page(results=rows, pagination=Pagination(limit=limit, next_cursor=nxt))


@router.get("/stages")
async def list_stages(scope: ReadScope) -> list[dict[str, Any]]:
    """Every stage a pipeline may use, with its parameters' JSON schema."""
    return service.stage_catalogue()


async def execute_adhoc(body: AdhocExecuteRequest, scope: ReadScope) -> ExecuteOut:
    """Run a pipeline given inline, without saving it."""
    plan = await scope.ctx.db.read(lambda s: service.check_definition(s, scope.namespace_id, body))
    out = await _execute(scope, plan, body)
    out.warnings = body.warnings()
    return out


# As `@router.post`, which cannot name a route class; added here to keep the routes' order.
router.add_api_route(
    "/execute",
    execute_adhoc,
    methods=["POST"],
    response_model=ExecuteOut,
    route_class_override=DirectJsonRoute,
)


@router.get("/{retriever_identifier}", response_model=RetrieverOut)
async def get_retriever(retriever_identifier: str, scope: ReadScope) -> RetrieverOut:
    """One retriever, by id or name."""
    return await scope.ctx.db.read(
        lambda s: service.get(s, scope.namespace_id, retriever_identifier)
    )


@router.delete("/{retriever_identifier}", response_model=RetrieverDeleted)
async def delete_retriever(retriever_identifier: str, scope: WriteScope) -> RetrieverDeleted:
    """Delete a saved retriever (its collections stay)."""
    retriever_id = await scope.ctx.db.write(
        lambda s: service.delete(s, scope.namespace_id, retriever_identifier)
    )
    return RetrieverDeleted(retriever_id=retriever_id)


async def execute_retriever(
    retriever_identifier: str, body: ExecuteRequest, scope: ReadScope
) -> ExecuteOut:
    """Run a saved retriever: `inputs` fill its `{{INPUT.x}}` templates."""
    out = await _execute(scope, retriever_identifier, body)
    out.warnings = body.warnings()
    return out


# As `@router.post`, which cannot name a route class; added here to keep the routes' order.
router.add_api_route(
    "/{retriever_identifier}/execute",
    execute_retriever,
    methods=["POST"],
    response_model=ExecuteOut,
    route_class_override=DirectJsonRoute,
)


async def _execute(scope: ReadScope, plan: service.Plan | str, body: ExecuteRequest) -> ExecuteOut:
    """Run `plan`, or the saved retriever of that name or id (read in the run's transaction):
    inline on the event loop where the database reads there (SQLite), in a thread when the
    run needs a model or other long work (`retrievers.inline`) or the database is a server."""
    ctx = scope.ctx
    inputs = body.inputs.model_dump(exclude_none=True, by_alias=True)
    images = await service.load_images(inputs, ctx.fetch_policy, ctx.settings.tmp_dir)
    limit, cursor = body.page()

    def run(s: Session, inline: bool) -> ExecuteOut:
        saved = service.plan_of(s, scope.namespace_id, plan) if isinstance(plan, str) else plan
        return service.execute(
            s, ctx.searcher, scope.namespace_id, saved, dict(inputs), images,
            limit=limit, cursor=cursor, inline=inline,
        )  # fmt: skip

    if ctx.db.is_sqlite:
        with contextlib.suppress(RunInThread):
            return await ctx.db.read(partial(run, inline=True))
    return await ctx.db.read(partial(run, inline=False), heavy=True)
