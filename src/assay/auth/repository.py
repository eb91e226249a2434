"""SQL for API keys (not namespaced: keys sit above namespaces)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from assay.models import ApiKey


class KeyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_hash(self, key_hash: str) -> ApiKey | None:
        return self.session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))

    def get(self, key_id: str) -> ApiKey | None:
        return self.session.get(ApiKey, key_id)

    def list(self) -> list[ApiKey]:
        return list(self.session.scalars(select(ApiKey).order_by(ApiKey.key_id)))

    def any_admin(self) -> bool:
        stmt = select(ApiKey.key_id).where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None))
        return self.session.scalar(stmt.limit(1)) is not None

    def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        self.session.flush()
        return key
