"""Serves the console's files: `/ui/` (the page), `/ui/sw.js` and `/ui/static/...`.

Files are read from the package once and served from memory with their ETag. Every answer
carries a strict Content-Security-Policy: scripts and styles only from this origin, no inline
code, Trusted Types required (so no HTML string can reach the DOM), nothing framed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from assay.config import Settings

PREFIX = "/ui"
STATIC = Path(__file__).parent / "static"
# The one Trusted Types policy the console creates (to register its service worker).
TRUSTED_TYPES_POLICY = "assay-console"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every console file by its path under `static/` (e.g. `pages/search.js`)."""
    found: dict[str, Asset] = {}
    for path in sorted(STATIC.rglob("*")):
        media_type = MEDIA_TYPES.get(path.suffix)
        if path.is_file() and media_type is not None:
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            found[path.relative_to(STATIC).as_posix()] = Asset(body, media_type, etag)
    return found


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def upload_origins(settings: Settings) -> list[str]:
    """Origins other than the console's own that the browser PUTs upload bytes to: the public
    URL when Assay sits behind a proxy, and the S3 endpoint of an S3 blob store."""
    origins: list[str] = []
    if settings.public_url and (origin := _origin(settings.public_url)):
        origins.append(origin)
    if settings.blob_store.startswith("s3://"):
        endpoint = settings.s3_endpoint_url
        origins.append(_origin(endpoint) or endpoint if endpoint else "https://*.amazonaws.com")
    return origins


def content_security_policy(settings: Settings) -> str:
    connect = " ".join(["'self'", *upload_origins(settings)])
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' blob:",
            "media-src 'self' blob:",
            f"connect-src {connect}",
            "worker-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            f"trusted-types {TRUSTED_TYPES_POLICY}",
        ]
    )


def security_headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }


def build_router(settings: Settings) -> APIRouter:
    """The console's routes, none of them in the OpenAPI document and none needing a key."""
    router = APIRouter(include_in_schema=False)
    headers = security_headers(settings)

    def serve(name: str, request: Request) -> Response:
        asset = assets().get(name)
        if asset is None:
            return Response("no such console file", 404, media_type="text/plain")
        sent = {**headers, "ETag": asset.etag}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=sent)
        return Response(asset.body, media_type=asset.media_type, headers=sent)

    @router.get("/")
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    @router.get(PREFIX)
    async def console_bare() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    @router.get(f"{PREFIX}/")
    async def console_page(request: Request) -> Response:
        return serve("index.html", request)

    @router.get(f"{PREFIX}/sw.js")
    async def service_worker(request: Request) -> Response:
        # At the top of /ui/ so that its scope covers the media URLs it answers.
        return serve("sw.js", request)

    @router.get(PREFIX + "/static/{name:path}")
    async def static_file(name: str, request: Request) -> Response:
        return serve(name, request)

    return router


def include_console(app: FastAPI, settings: Settings) -> None:
    """Mount the console on the app (its pages are public; its data needs the user's key)."""
    app.include_router(build_router(settings))
