"""Pydantic bases shared by every domain: strict requests, lists, pagination and filters."""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

T = TypeVar("T")


class Schema(BaseModel):
    """Base of every response body."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class RequestSchema(BaseModel):
    """Base of every request body: unknown keys are refused, naming the accepted ones.

    Fields the hosted product defines but Assay does not implement are listed in `unimplemented`;
    they are accepted and reported back in the response's `warnings`.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    unimplemented: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            accepted = _accepted_keys(cls)
            if not accepted.issuperset(data):
                unknown = sorted(str(k) for k in data if k not in accepted)
                raise PydanticCustomError(
                    "unknown_field",
                    "unknown field(s) {unknown}; accepted: {accepted}",
                    {"unknown": ", ".join(unknown), "accepted": ", ".join(sorted(accepted))},
                )
        return data

    def warnings(self) -> list[str]:
        """Messages for the hosted-only fields this request set."""
        return [
            f"field '{name}' is accepted for compatibility but not implemented; it was ignored"
            for name in sorted(self.unimplemented & self.model_fields_set)
        ]


@cache
def _accepted_keys(model: type[BaseModel]) -> frozenset[str]:
    fields = model.model_fields
    return frozenset(fields) | {f.alias for f in fields.values() if f.alias}


class Pagination(Schema):
    limit: int
    next_cursor: str | None = None


class Page(Schema, Generic[T]):
    """A page of a list; `next_cursor` is null on the last page."""

    results: list[T]
    pagination: Pagination
    total_count: int | None = None


Operator = Literal[
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "starts_with", "exists"
]


class Condition(RequestSchema):
    field: str = Field(min_length=1, max_length=200)
    operator: Operator = "eq"
    value: Any = None


class FilterGroup(RequestSchema):
    and_: list[Condition | FilterGroup] | None = Field(default=None, alias="AND", max_length=50)
    or_: list[Condition | FilterGroup] | None = Field(default=None, alias="OR", max_length=50)


class SortSpec(RequestSchema):
    field: str = "created_at"
    direction: Literal["asc", "desc"] = "desc"


class ListRequest(RequestSchema):
    """Body of the hosted product's `POST /v1/<things>/list`."""

    filters: FilterGroup | None = None
    sort: SortSpec | None = None
    limit: int = Field(default=50, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=2000)
    search: str | None = None

    unimplemented: ClassVar[frozenset[str]] = frozenset({"search"})
