"""The error envelope as an OpenAPI schema, attached to every route's responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorDetail(BaseModel):
    type: str
    message: str
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    success: bool = False
    status: int
    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Bad request (malformed JSON, missing X-Namespace header)",
    401: "Missing, malformed or revoked API key",
    403: "The key's role is too low for this action",
    404: "Not found, or not visible to this key",
    405: "Method not allowed",
    409: "Already exists, or the resource is in the wrong state",
    413: "Request body too large",
    422: "Validation failed; details.validation_errors names each JSON path",
    429: "Too many requests",
    500: "Internal error (the body carries a request_id, never a stack trace)",
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text} for code, text in _DESCRIPTIONS.items()
}
