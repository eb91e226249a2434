"""The application factory: lifespan wiring, middleware and the one error handler."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException

from assay.api import include_routes
from assay.auth.service import ensure_admin_key
from assay.config import Settings
from assay.console import include_console
from assay.context import AppContext
from assay.errors import AppError
from assay.idempotency.middleware import IdempotencyMiddleware
from assay.kit import memory
from assay.kit.middleware import BodyLimitMiddleware, InternalErrorMiddleware
from assay.kit.requestlog import RequestLogMiddleware
from assay.migrations.runner import upgrade_to_head
from assay.workers import Background

_HTTP_TYPES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    409: "ConflictError",
    413: "PayloadTooLargeError",
    416: "RangeNotSatisfiableError",
    422: "ValidationError",
    429: "TooManyRequestsError",
}
_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app; the database is migrated and the admin key ensured at start-up."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = prepare(settings)
        app.state.ctx = ctx
        background = Background(ctx, settings.workers) if settings.workers else None
        if background is not None:
            background.start()
        memory.freeze_heap()  # what start-up built lives as long as the app
        try:
            yield
        finally:
            if background is not None:
                await background.stop()
            ctx.close()

    app = FastAPI(
        title="Assay",
        version="0.1.0",
        summary="Self-hosted multimodal data platform (wire-compatible API).",
        lifespan=lifespan,
        telemetry=None if settings.opentelemetry else _NO_TELEMETRY,
    )
    include_routes(app)
    include_console(app, settings)  # the web console at /ui (static files, no key needed)
    _document_bearer_auth(app)
    _install_error_handlers(app)
    app.add_middleware(
        IdempotencyMiddleware, db=lambda: app.state.ctx.db, ttl_s=settings.idempotency_ttl_s
    )
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_request_bytes, exempt_prefixes=("/v1/uploads/",)
    )
    # Outside the rest, so it answers what any layer inside raises (see its docstring).
    app.add_middleware(InternalErrorMiddleware)
    # Outermost: every answer, a 500 included, gets its request id, log line and metrics.
    app.add_middleware(RequestLogMiddleware)
    return app


_PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics")


def _document_bearer_auth(app: FastAPI) -> None:
    """Declare the bearer key in OpenAPI (checked by one dependency, not per-route security)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "sk_live_... key"}
            }
            for path, operations in schema["paths"].items():
                if path not in _PUBLIC_PATHS:
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
            app.openapi_schema = schema  # build() cached it already; this tells the type
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def prepare(settings: Settings) -> AppContext:
    """Migrate, build the context and make sure an admin key exists (printed once if generated)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.database_url)
    ctx = AppContext.build(settings)
    secret = ctx.db.write_sync(lambda s: ensure_admin_key(s, settings.admin_key))
    if secret:
        print(f"Generated the first admin key (shown only once): {secret}", flush=True)
    return ctx


class ErrorResponse(JSONResponse):
    """An error envelope in ASCII-only JSON: it encodes whatever text a message quotes."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def _envelope(
    status: int, type_: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    error: dict[str, Any] = {"type": type_, "message": message}
    if details is not None:
        error["details"] = details
    return ErrorResponse({"success": False, "status": status, "error": error}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_: Request, exc: AppError) -> JSONResponse:
        response = ErrorResponse(exc.body(), status_code=exc.status)
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_clean_error(e) for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in errors):
            return _envelope(400, "BadRequestError", "request body is not valid JSON")
        first: dict[str, Any] = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        message = f"{where}: {first['msg']}" if where else first["msg"]
        return _envelope(422, "ValidationError", message, {"validation_errors": errors})

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        type_ = _HTTP_TYPES.get(exc.status_code, "HTTPError")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route"
        response = _envelope(exc.status_code, type_, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response


def _clean_error(error: Any) -> dict[str, Any]:
    """A pydantic error as `{loc, msg, type}`, with FastAPI's leading `body` dropped."""
    loc = list(error.get("loc", ()))
    if loc and loc[0] == "body":
        loc = loc[1:]
    return {"loc": loc, "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))}
