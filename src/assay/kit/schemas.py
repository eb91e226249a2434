"""Pydantic bases shared by every domain: strict requests, lists, pagination and filters."""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from assay.errors import AppError

T = TypeVar("T")


class Schema(BaseModel):
    """Base of every response body."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class RequestSchema(BaseModel):
    """Base of every request body: unknown keys are refused, naming the accepted ones.

    Fields the hosted product defines but Assay does not implement are accepted and reported
    back in the response's `warnings`: declared ones (typed, listed in `unimplemented`), and the
    names in `hosted_only`, which are dropped before validation. The hosted product's generated
    SDK sends its models' defaults (`"mode": "managed"`, `"stream": false`, ...) on every call,
    so each request model names the hosted fields its SDK twin can send.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    unimplemented: ClassVar[frozenset[str]] = frozenset()
    hosted_only: ClassVar[frozenset[str]] = frozenset()
    _ignored: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="wrap")
    @classmethod
    def _sort_keys(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        ignored: frozenset[str] = frozenset()
        if isinstance(data, dict):
            accepted = _accepted_keys(cls)
            if not accepted.issuperset(data):
                unknown = sorted(str(k) for k in data if k not in accepted)
                raise PydanticCustomError(
                    "unknown_field",
                    "unknown field(s) {unknown}; accepted: {accepted}",
                    {"unknown": ", ".join(unknown), "accepted": ", ".join(sorted(accepted))},
                )
            ignored = cls.hosted_only.intersection(data)
            if ignored:
                data = {k: v for k, v in data.items() if k not in ignored}
        model = handler(data)
        if ignored and isinstance(model, RequestSchema):
            model._ignored = ignored
        return model

    def warnings(self) -> list[str]:
        """Messages for the hosted-only fields this request set."""
        return [
            f"field '{name}' is accepted for compatibility but not implemented; it was ignored"
            for name in sorted((self.unimplemented & self.model_fields_set) | self._ignored)
        ]


@cache
def _accepted_keys(model: type[RequestSchema]) -> frozenset[str]:
    fields = model.model_fields
    return frozenset(fields) | {f.alias for f in fields.values() if f.alias} | model.hosted_only


class ItemFailure(Schema):
    """One item of a many-item request that failed alone, spelled as the hosted product does
    (`object_index`, `error` as text, `error_type`), with the error's `details` as well."""

    index: int
    object_index: int
    error: str
    error_type: str
    details: dict[str, Any] | None = None

    @classmethod
    def of(cls, index: int, exc: AppError) -> ItemFailure:
        return cls(
            index=index,
            object_index=index,
            error=exc.message,
            error_type=exc.type,
            details=exc.details,
        )


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
    hosted_only: ClassVar[frozenset[str]] = frozenset(
        {
            "case_sensitive",
            "include_system",
            "offset",
            "return_presigned_urls",
            "return_vectors",
            "select",
            "sorts",
            "status",
        }
    )
