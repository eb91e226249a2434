"""Who is calling: the key's role and the namespaces it may see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from assay.errors import Forbidden

Role = Literal["read", "write", "admin"]
_RANK = {"read": 0, "write": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: Role
    namespaces: frozenset[str] | None  # None: every namespace
    credential_hash: str

    def require(self, role: Role) -> None:
        """Raise 403 unless this key's role is at least `role`."""
        if _RANK[self.role] < _RANK[role]:
            raise Forbidden(f"this action needs a key with role '{role}' (this key: '{self.role}')")

    def can_see(self, namespace_id: str) -> bool:
        return self.namespaces is None or namespace_id in self.namespaces

    def require_all_namespaces(self) -> None:
        """Raise 403 for keys limited to some namespaces (they may not create new ones)."""
        if self.namespaces is not None:
            raise Forbidden("this key is limited to some namespaces and cannot create namespaces")
