"""Tasks over HTTP: what a caller polls for an asynchronous operation."""

from __future__ import annotations

from fastapi import APIRouter

from assay.deps import ReadScope
from assay.kit.routing import StrictJsonRoute
from assay.tasks import service
from assay.tasks.schemas import TaskOut

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], route_class=StrictJsonRoute)


@router.get("/{task_id}", response_model=TaskOut)
async def get_task(task_id: str, scope: ReadScope) -> TaskOut:
    """An asynchronous operation's status, progress and result."""
    return await scope.ctx.db.read(lambda s: service.get(s, scope.namespace_id, task_id))
