"""The only module that imports every domain's router; every route gets the error responses."""

from __future__ import annotations

from fastapi import APIRouter

from assay import health
from assay.auth import endpoints as keys
from assay.buckets import endpoints as buckets
from assay.kit.openapi import ERROR_RESPONSES
from assay.namespaces import endpoints as namespaces
from assay.objects import endpoints as objects

router = APIRouter()
router.include_router(health.router)
for domain_router in (
    health.catalogue_router,
    keys.router,
    namespaces.router,
    buckets.router,
    objects.router,
):
    router.include_router(domain_router, responses=ERROR_RESPONSES)
