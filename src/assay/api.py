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
for domain in (keys, namespaces, buckets, objects):
    router.include_router(domain.router, responses=ERROR_RESPONSES)
