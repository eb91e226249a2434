"""Namespace use-cases: the isolation boundary and its feature extractors."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from assay.auth.principal import Principal
from assay.collections.service import check_extractors, create_defaults
from assay.errors import AlreadyExists, NotFound, ValidationFailed
from assay.extractors.registry import ExtractorRegistry
from assay.kit.ids import has_prefix, new_id
from assay.kit.paging import SortKey, count_all, paginate
from assay.models import Namespace
from assay.namespaces.repository import NamespaceRepository
from assay.namespaces.schemas import NamespaceCreate, NamespaceOut, NamespacePatch


def not_found(ident: str) -> NotFound:
    """The one answer for a namespace that is missing or not visible to the caller."""
    return NotFound(f"namespace '{ident}' not found")


def resolve(session: Session, principal: Principal, ident: str) -> Namespace:
    """The namespace named by id or name, if this key may see it; else 404 (never 403)."""
    ns = NamespaceRepository(session, principal.namespaces).get_by_ident(ident)
    if ns is None:
        raise not_found(ident)
    return ns


def find(session: Session, ident: str) -> tuple[str, str] | None:
    """(id, name) of the namespace named by id or name, whoever asks (callers check access)."""
    ns = NamespaceRepository(session).get_by_ident(ident)
    return None if ns is None else (ns.namespace_id, ns.namespace_name)


def create(session: Session, registry: ExtractorRegistry, body: NamespaceCreate) -> NamespaceOut:
    if has_prefix(body.namespace_name, "ns"):
        raise ValidationFailed.at(["namespace_name"], "a name may not look like a namespace id")
    extractors = check_extractors(registry, body.feature_extractors)
    repo = NamespaceRepository(session)
    if repo.name_taken(body.namespace_name):
        raise AlreadyExists(f"namespace '{body.namespace_name}' already exists")
    ns = repo.add(
        Namespace(
            namespace_id=new_id("ns"),
            namespace_name=body.namespace_name,
            description=body.description,
            feature_extractors=extractors,
        )
    )
    create_defaults(session, ns.namespace_id, extractors)
    return _out(ns, {"collection_count": len(extractors)}, warnings=body.warnings())


def get(session: Session, principal: Principal, ident: str) -> NamespaceOut:
    ns = resolve(session, principal, ident)
    return _out(ns, NamespaceRepository(session).counts([ns.namespace_id])[ns.namespace_id])


def patch(session: Session, principal: Principal, ident: str, body: NamespacePatch) -> NamespaceOut:
    ns = resolve(session, principal, ident)
    if "description" in body.model_fields_set:
        ns.description = body.description
    session.flush()
    return _out(ns, NamespaceRepository(session).counts([ns.namespace_id])[ns.namespace_id])


def delete(session: Session, principal: Principal, ident: str) -> tuple[str, list[str]]:
    """Deletes the namespace and, by cascade, everything in it; returns its id and the ids
    of the collections that went with it (their vector indexes live outside the database)."""
    ns = resolve(session, principal, ident)
    repo = NamespaceRepository(session)
    collection_ids = repo.collection_ids(ns.namespace_id)
    repo.delete(ns)
    return ns.namespace_id, collection_ids


def list_page(
    session: Session, principal: Principal, *, limit: int, cursor: str | None
) -> tuple[list[NamespaceOut], str | None, int]:
    repo = NamespaceRepository(session, principal.namespaces)
    key = SortKey(Namespace.namespace_id, Namespace.namespace_id)
    rows, next_cursor = paginate(session, repo.scoped(), key, limit=limit, cursor=cursor)
    counts = repo.counts([r.namespace_id for r in rows])
    total = count_all(session, repo.scoped())
    return [_out(r, counts[r.namespace_id]) for r in rows], next_cursor, total


def _out(ns: Namespace, counts: dict[str, Any], warnings: list[str] | None = None) -> NamespaceOut:
    return NamespaceOut(
        namespace_id=ns.namespace_id,
        namespace_name=ns.namespace_name,
        description=ns.description,
        feature_extractors=ns.feature_extractors,
        created_at=ns.created_at,
        updated_at=ns.updated_at,
        warnings=warnings or [],
        **counts,
    )
