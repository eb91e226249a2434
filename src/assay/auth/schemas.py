from __future__ import annotations

import datetime as dt

from pydantic import Field

from assay.auth.principal import Role
from assay.kit.schemas import RequestSchema, Schema


class KeyCreate(RequestSchema):
    name: str = Field(default="api key", min_length=1, max_length=200)
    role: Role = "write"
    namespaces: list[str] | None = Field(
        default=None, max_length=1000, description="namespace ids or names; omit for all"
    )


class KeyOut(Schema):
    key_id: str
    name: str
    role: Role
    namespaces: list[str] | None
    key_preview: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


class KeyCreated(KeyOut):
    key: str = Field(description="the secret, shown only in this response")
