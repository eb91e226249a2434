"""Direct uploads over HTTP: create (one or a batch), the signed PUT, confirm, get, list."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from assay.backends.blob.base import PresigningStore
from assay.context import AppContext
from assay.deps import NamespaceScope, PageQuery, ReadScope, WriteScope, context_of
from assay.errors import AppError
from assay.kit.routing import StrictJsonRoute
from assay.kit.schemas import ItemFailure, ListRequest, Pagination
from assay.uploads import service
from assay.uploads.desk import UploadDesk
from assay.uploads.schemas import (
    ConfirmOut,
    UploadBatchCreate,
    UploadBatchOut,
    UploadConfirm,
    UploadCreate,
    UploadOut,
    UploadPage,
)

router = APIRouter(
    prefix="/v1/buckets/{bucket_identifier}/uploads", tags=["uploads"], route_class=StrictJsonRoute
)
transfer_router = APIRouter(tags=["uploads"], route_class=StrictJsonRoute)


def _desk(ctx: AppContext) -> UploadDesk:
    s = ctx.settings
    folder = s.tmp_dir / "uploads"
    remote = ctx.blobs if isinstance(ctx.blobs, PresigningStore) else None
    return UploadDesk(ctx.db, ctx.registrar, ctx.signing_key, folder, s.max_upload_bytes, remote)


def _base_url(request: Request) -> str:
    return request.app.state.ctx.settings.public_url or str(request.base_url)


@router.post("", response_model=UploadOut)
async def create_upload(
    bucket_identifier: str, body: UploadCreate, request: Request, scope: WriteScope
) -> UploadOut:
    """A signed URL to PUT the file to (or one per part); confirm it afterwards."""
    desk = _desk(scope.ctx)
    bucket = await desk.registrar.bucket(scope.namespace_id, bucket_identifier)
    upload = await scope.ctx.db.write(lambda s: service.create(s, bucket, body, desk.max_bytes))
    upload = await desk.open(upload)
    out = desk.describe(upload, _base_url(request))
    out.warnings = body.warnings()
    return out


@router.post("/batch", response_model=UploadBatchOut)
async def create_uploads_batch(
    bucket_identifier: str, body: UploadBatchCreate, request: Request, scope: WriteScope
) -> UploadBatchOut:
    """Up to 100 uploads; each succeeds or fails on its own."""
    desk = _desk(scope.ctx)
    bucket = await desk.registrar.bucket(scope.namespace_id, bucket_identifier)
    succeeded, failed = [], []
    for index, item in enumerate(body.uploads):
        try:
            create = partial(
                service.create,
                bucket=bucket,
                body=item,
                max_bytes=desk.max_bytes,
            )
            upload = await scope.ctx.db.write(create)
            upload = await desk.open(upload)
            succeeded.append(desk.describe(upload, _base_url(request)))
        except AppError as exc:
            failed.append(ItemFailure.of(index, exc))
    return UploadBatchOut(
        succeeded=succeeded,
        failed=failed,
        succeeded_count=len(succeeded),
        failed_count=len(failed),
    )


@router.get("", response_model=UploadPage)
async def list_uploads(bucket_identifier: str, scope: ReadScope, page: PageQuery) -> UploadPage:
    """Uploads of the bucket, newest first."""
    return await _list(scope, bucket_identifier, page.limit, page.cursor)


@router.post("/list", response_model=UploadPage)
async def list_uploads_post(
    bucket_identifier: str, body: ListRequest, scope: ReadScope
) -> UploadPage:
    """The hosted product's list form."""
    return await _list(scope, bucket_identifier, body.limit, body.cursor)


async def _list(
    scope: NamespaceScope, bucket_identifier: str, limit: int, cursor: str | None
) -> UploadPage:
    bucket = await scope.ctx.registrar.bucket(scope.namespace_id, bucket_identifier)
    rows, nxt, stats = await scope.ctx.db.read(
        lambda s: service.list_page(s, bucket, limit=limit, cursor=cursor), heavy=True
    )
    results = [service.to_out(u) for u in rows]
    pagination = Pagination(limit=limit, next_cursor=nxt)
    return UploadPage(results=results, pagination=pagination, stats=stats)


@router.get("/{upload_id}", response_model=UploadOut)
async def get_upload(bucket_identifier: str, upload_id: str, scope: ReadScope) -> UploadOut:
    """One upload and its status."""
    bucket = await scope.ctx.registrar.bucket(scope.namespace_id, bucket_identifier)
    return service.to_out(await scope.ctx.db.read(lambda s: service.get(s, bucket, upload_id)))


@router.post("/{upload_id}/confirm", response_model=ConfirmOut)
async def confirm_upload(
    bucket_identifier: str, upload_id: str, scope: WriteScope, body: UploadConfirm | None = None
) -> ConfirmOut:
    """Check size and SHA-256, then register the object (confirming twice answers the same)."""
    desk = _desk(scope.ctx)
    bucket = await desk.registrar.bucket(scope.namespace_id, bucket_identifier)
    return await desk.confirm(bucket, upload_id, body.file_hash if body else None)


@transfer_router.put(
    "/v1/uploads/{token}",
    responses={
        403: {"description": "Expired or tampered URL"},
        413: {"description": "Larger than declared"},
    },
)
async def put_upload(token: str, request: Request) -> JSONResponse:
    """The signed URL itself: no API key, the token authorizes exactly this upload (or part)."""
    desk = _desk(context_of(request))
    upload_id, size, sha = await desk.receive(token, request.stream())
    return JSONResponse(
        {"upload_id": upload_id, "size_bytes": size, "sha256": sha}, headers={"ETag": f'"{sha}"'}
    )
