from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from assay.kit.schemas import FilterGroup, RequestSchema, Schema
from assay.namespaces.schemas import NAME_PATTERN

_HOSTED_ONLY = frozenset(
    {
        "visibility",
        "marketplace_listing_id",
        "requires_subscription",
        "budget_limits",
        "tags",
        "display_config",
    }
)


class StageConfigIn(RequestSchema):
    stage_id: str = Field(min_length=1, max_length=100)
    parameters: dict[str, Any] = Field(default_factory=dict)


class StageIn(RequestSchema):
    """One step of a pipeline; `config.stage_id` names what it does."""

    unimplemented = frozenset({"batch_size", "description"})

    stage_name: str = Field(min_length=1, max_length=200)
    stage_type: str | None = None
    config: StageConfigIn
    batch_size: str | None = None
    description: str | None = None


class RetrieverDefinition(RequestSchema):
    """What a retriever searches and how: the body of create, and of ad-hoc execute."""

    unimplemented = _HOSTED_ONLY

    collection_identifiers: list[str] = Field(
        default_factory=list, max_length=50, description="collection ids or names"
    )
    input_schema: dict[str, Any] = Field(default_factory=dict)
    stages: list[StageIn] = Field(min_length=1, max_length=20)
    visibility: Any = None
    marketplace_listing_id: Any = None
    requires_subscription: Any = None
    budget_limits: Any = None
    tags: Any = None
    display_config: Any = None


class RetrieverCreate(RetrieverDefinition):
    retriever_name: str = Field(pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=10_000)


class ExecutionInputs(BaseModel):
    """What a search is asked: `{{INPUT.x}}` in stage parameters reads these (and any other
    input a retriever's `input_schema` names)."""

    model_config = ConfigDict(extra="allow")

    query: str | None = Field(default=None, max_length=10_000)
    query_url: str | None = Field(default=None, max_length=8_192)
    query_image: str | None = Field(
        default=None, description="an image as base64 or a data: URI", max_length=30_000_000
    )
    filters: FilterGroup | None = None


class PaginationIn(RequestSchema):
    limit: int | None = Field(default=None, ge=1, le=1000)
    cursor: str | None = None
    page_size: int | None = Field(default=None, ge=1, le=1000)
    method: str | None = None


class ExecuteRequest(RequestSchema):
    unimplemented = frozenset({"stream"})
    hosted_only: ClassVar[frozenset[str]] = frozenset(
        {"explain", "return_presigned_urls", "return_vectors", "skip_cache"}
    )

    inputs: ExecutionInputs = Field(default_factory=ExecutionInputs)
    limit: int | None = Field(default=None, ge=1, le=1000)
    cursor: str | None = None
    pagination: PaginationIn | None = None
    stream: bool | None = None

    def page(self) -> tuple[int, str | None]:
        """The page size and cursor, from the top level or the hosted `pagination` object."""
        p = self.pagination
        limit = self.limit or (p and (p.limit or p.page_size)) or 10
        return limit, self.cursor or (p.cursor if p else None)


class AdhocExecuteRequest(RetrieverDefinition, ExecuteRequest):
    unimplemented = _HOSTED_ONLY | {"stream"}


class RetrieverOut(Schema):
    retriever_id: str
    retriever_name: str
    description: str | None = None
    collection_ids: list[str]
    input_schema: dict[str, Any]
    stages: list[dict[str, Any]]
    created_at: dt.datetime
    updated_at: dt.datetime
    warnings: list[str] = Field(default_factory=list)

    @field_validator("stages")
    @classmethod
    def _parameters_mirrored(cls, stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each stage also carries its `config.parameters` at its top level, as the hosted
        product answers (its SDK requires them there)."""
        return [{**st, "parameters": _parameters(st)} for st in stages]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def collection_identifiers(self) -> list[str]:
        """The hosted product's name for `collection_ids`."""
        return self.collection_ids

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fusion(self) -> str | None:
        """The first feature_search stage's fusion (the hosted product reports it)."""
        for stage in self.stages:
            config = stage.get("config") or {}
            if config.get("stage_id") in ("feature_search", "semantic_search", "knn_search"):
                return str(_parameters(stage).get("fusion", "rrf"))
        return None


def _parameters(stage: dict[str, Any]) -> dict[str, Any]:
    return dict((stage.get("config") or {}).get("parameters") or {})


class RetrieverCreated(RetrieverOut):
    """The created retriever, also under `retriever` as the hosted product answers."""

    retriever: dict[str, Any]


class RetrieverDeleted(Schema):
    retriever_id: str
    deleted: bool = True


class ResultOut(Schema):
    document_id: str
    collection_id: str
    score: float
    source: dict[str, Any]
    content: dict[str, Any]
    metadata: dict[str, Any]


class StageStat(Schema):
    stage_name: str
    stage_id: str
    input_count: int
    output_count: int
    duration_ms: float


class ExecutionPagination(Schema):
    limit: int
    next_cursor: str | None = None
    total_count: int


class ExecuteOut(Schema):
    execution_id: str
    status: str = "completed"
    retriever_id: str | None = None
    results: list[ResultOut]
    stage_stats: list[StageStat]
    pagination: ExecutionPagination
    duration_ms: float
    warnings: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def documents(self) -> list[ResultOut]:
        """The hosted product's name for the results."""
        return self.results
