"""The only module that imports every domain's router; every route gets the error responses."""

from __future__ import annotations

from fastapi import FastAPI

from assay import health
from assay.auth import endpoints as keys
from assay.batches import endpoints as batches
from assay.buckets import endpoints as buckets
from assay.collections import endpoints as collections
from assay.kit.openapi import ERROR_RESPONSES
from assay.kit.routing import include_flat
from assay.namespaces import endpoints as namespaces
from assay.objects import endpoints as objects
from assay.retrievers import endpoints as retrievers
from assay.syncs import endpoints as syncs
from assay.tasks import endpoints as tasks
from assay.uploads import endpoints as uploads
from assay.webhooks import endpoints as webhooks

# Routes are matched in order, one by one (about 80 of them, ~2 µs each): the busiest (object
# registration, then search) come first, the health probes and FastAPI's OpenAPI pages last.
# No two routers' paths overlap.
DOMAIN_ROUTERS = (
    objects.router,
    retrievers.router,
    uploads.router,
    uploads.transfer_router,
    batches.router,
    syncs.router,
    buckets.router,
    tasks.router,
    collections.router,
    collections.lineage_router,
    webhooks.router,
    namespaces.router,
    keys.router,
    health.catalogue_router,
)


def include_routes(app: FastAPI) -> None:
    """Put every router's routes on the app itself (one level: route matching is per request),
    after the domains' routes the health probes, then the OpenAPI pages FastAPI made itself."""
    own = list(app.router.routes)  # /openapi.json, /docs and /redoc: no path of the API's
    app.router.routes.clear()
    for router in DOMAIN_ROUTERS:
        include_flat(app, router, ERROR_RESPONSES)
    include_flat(app, health.router)
    app.router.routes.extend(own)
