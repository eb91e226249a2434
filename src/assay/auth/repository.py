"""SQL for API keys (not namespaced: keys sit above namespaces)."""

from __future__ import annotations

from sqlalchemy import select

from assay.kit.repository import Repository
from assay.models import ApiKey


class KeyRepository(Repository[ApiKey]):
    model = ApiKey
    id_column = ApiKey.key_id

    def by_hash(self, key_hash: str) -> ApiKey | None:
        return self.session.scalar(self.scoped().where(ApiKey.key_hash == key_hash))

    def get(self, row_id: str) -> ApiKey | None:
        return self.session.get(ApiKey, row_id)  # the identity map first: no query if loaded

    def all(self) -> list[ApiKey]:
        return list(self.session.scalars(self.scoped().order_by(ApiKey.key_id)))

    def any_admin(self) -> bool:
        stmt = select(ApiKey.key_id).where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None))
        return self.session.scalar(stmt.limit(1)) is not None
