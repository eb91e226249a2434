"""Liveness, readiness and the extractor catalogue (routes outside any namespace)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from assay.deps import Ctx, ReadCaller
from assay.kit.metrics import exposition
from assay.kit.routing import StrictJsonRoute
from assay.kit.schemas import Schema

router = APIRouter(tags=["operations"], route_class=StrictJsonRoute)
catalogue_router = APIRouter(tags=["feature extractors"], route_class=StrictJsonRoute)


class Health(Schema):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(ctx: Ctx) -> Any:
    """The database, the blob store and the vector index folder answer (with the Ray engine,
    also whether its cluster does: "degraded" while it does not, since the API still serves)."""
    checks: dict[str, str] = {}
    try:
        await ctx.db.read(lambda s: s.execute(text("SELECT 1")).scalar())
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        ctx.blobs.check()
        checks["blob_store"] = "ok"
    except Exception as exc:
        checks["blob_store"] = f"error: {type(exc).__name__}"
    try:
        await anyio.to_thread.run_sync(ctx.searcher.indexes.check)
        checks["vector_index"] = "ok"
    except Exception as exc:
        checks["vector_index"] = f"error: {type(exc).__name__}"
    if ctx.settings.engine == "ray":
        # Without the cluster batch jobs wait in the queue, but the API serves: 200, "degraded".
        checks["ray"] = await anyio.to_thread.run_sync(ctx.engine.status)
    ok = all(v == "ok" for k, v in checks.items() if k != "ray")
    degraded = ok and checks.get("ray", "ok") != "ok"
    body = Health(status="degraded" if degraded else "ok" if ok else "unavailable", checks=checks)
    return body if ok else JSONResponse(body.model_dump(), status_code=503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(ctx: Ctx) -> Response:
    """Prometheus metrics of this process and of the deployment's queues (no key needed,
    nothing tenant-written in it but collection ids)."""
    body, content_type = await anyio.to_thread.run_sync(exposition, ctx)
    return Response(body, media_type=content_type)


class ExtractorOutputOut(Schema):
    name: str
    feature_uri: str
    type: str
    dimensions: int | None = None
    description: str = ""


class ExtractorOut(Schema):
    feature_extractor_name: str
    version: str
    description: str
    input_types: list[str]
    outputs: list[ExtractorOutputOut]
    params_schema: dict[str, Any]


@catalogue_router.get("/v1/feature-extractors", response_model=list[ExtractorOut])
@catalogue_router.get("/v1/collections/features/extractors", response_model=list[ExtractorOut])
async def list_feature_extractors(caller: ReadCaller) -> list[ExtractorOut]:
    """The extractor catalogue."""
    return [ExtractorOut.model_validate(spec.describe()) for spec in caller.ctx.registry.all()]
