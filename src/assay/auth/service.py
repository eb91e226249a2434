"""API keys: creation, hashing, authentication (with a short-lived cache) and revocation."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable

from sqlalchemy.orm import Session

from assay.auth.principal import Principal, Role
from assay.auth.repository import KeyRepository
from assay.errors import NotFound, Unauthorized, ValidationFailed
from assay.kit.db import utcnow
from assay.kit.ids import new_id, random_base62
from assay.models import ApiKey
from assay.namespaces.repository import NamespaceRepository

SECRET_PREFIX = "sk_live_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + random_base62(40)


def create_key(
    session: Session,
    *,
    name: str,
    role: Role,
    namespaces: Iterable[str] | None = None,
    secret: str | None = None,
    creator: Principal | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret (the only time the secret is available).

    A `creator` limited to some namespaces can only hand out keys inside them: omitted
    namespaces default to its own, and others are refused like nonexistent ones.
    """
    visible = creator.namespaces if creator else None
    if namespaces is None and visible is not None:
        namespaces = sorted(visible)
    ns_ids = None if namespaces is None else _resolve_namespaces(session, list(namespaces), visible)
    secret = secret or new_secret()
    key = ApiKey(
        key_id=new_id("sk"),
        name=name,
        role=role,
        namespaces=ns_ids,
        key_hash=hash_secret(secret),
        key_preview=secret[:12] + "…",
    )
    return KeyRepository(session).add(key), secret


def _resolve_namespaces(
    session: Session, idents: list[str], visible: frozenset[str] | None
) -> list[str]:
    repo = NamespaceRepository(session, visible)
    ids: list[str] = []
    for i, ident in enumerate(idents):
        ns = repo.get_by_ident(ident)
        if ns is None:
            raise ValidationFailed.at(["namespaces", i], f"namespace '{ident}' does not exist")
        ids.append(ns.namespace_id)
    return ids


def ensure_admin_key(session: Session, env_secret: str | None) -> str | None:
    """Bootstrap: register `ASSAY_ADMIN_KEY`, or generate one when no admin exists.

    Returns a generated secret (to print once) or None.
    """
    repo = KeyRepository(session)
    if env_secret:
        if repo.by_hash(hash_secret(env_secret)) is None:
            create_key(
                session, name="bootstrap admin (ASSAY_ADMIN_KEY)", role="admin", secret=env_secret
            )
        return None
    if repo.any_admin():
        return None
    _, secret = create_key(session, name="bootstrap admin", role="admin")
    return secret


def _manages(viewer: Principal | None, key: ApiKey) -> bool:
    """Whether `viewer` may see and revoke `key`: unlimited viewers all, others their own scope."""
    if viewer is None or viewer.namespaces is None:
        return True
    return key.namespaces is not None and set(key.namespaces) <= viewer.namespaces


def list_keys(session: Session, viewer: Principal | None = None) -> list[ApiKey]:
    return [k for k in KeyRepository(session).all() if _manages(viewer, k)]


def revoke_key(session: Session, key_id: str, viewer: Principal | None = None) -> ApiKey:
    key = KeyRepository(session).get(key_id)
    if key is None or not _manages(viewer, key):
        raise NotFound(f"key '{key_id}' not found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def lookup_principal(session: Session, credential_hash: str) -> Principal | None:
    key = KeyRepository(session).by_hash(credential_hash)
    if key is None or key.revoked_at is not None:
        return None
    namespaces = None if key.namespaces is None else frozenset(key.namespaces)
    return Principal(key.key_id, key.role, namespaces, credential_hash)  # type: ignore[arg-type]


class KeyCache:
    """Principals by credential hash for a few seconds, so auth costs no query per request.

    Revocation through this process clears the cache at once; other processes see it within
    `ttl_s`.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def get(self, credential_hash: str) -> tuple[bool, Principal | None]:
        entry = self._entries.get(credential_hash)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, credential_hash: str, principal: Principal | None) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[credential_hash] = (time.monotonic() + self.ttl_s, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def parse_bearer(header: str | None) -> str:
    """The secret of an `Authorization: Bearer ...` header, or 401."""
    if not header:
        raise Unauthorized("missing Authorization header (expected 'Bearer sk_...')")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("malformed Authorization header (expected 'Bearer sk_...')")
    return token.strip()
