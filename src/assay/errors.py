"""Application errors; each carries its HTTP status and the API's error `type`.

AppError (500 InternalError)
├── BadRequest (400 BadRequestError)
├── Unauthorized (401 UnauthorizedError)
├── Forbidden (403 ForbiddenError)
├── NotFound (404 NotFoundError)
├── AlreadyExists (409 AlreadyExistsError)
├── Conflict (409 ConflictError)
├── PayloadTooLarge (413 PayloadTooLargeError)
├── ValidationFailed (422 ValidationError)
└── TooManyRequests (429 TooManyRequestsError)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class AppError(Exception):
    status = 500
    type = "InternalError"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"success": False, "status": self.status, "error": error}


class BadRequest(AppError):
    status = 400
    type = "BadRequestError"


class Unauthorized(AppError):
    status = 401
    type = "UnauthorizedError"


class Forbidden(AppError):
    status = 403
    type = "ForbiddenError"


class NotFound(AppError):
    status = 404
    type = "NotFoundError"


class AlreadyExists(AppError):
    status = 409
    type = "AlreadyExistsError"


class Conflict(AppError):
    status = 409
    type = "ConflictError"


class InProgress(Conflict):
    """The same work is running now; `retry_after_s` says when asking again makes sense."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PayloadTooLarge(AppError):
    status = 413
    type = "PayloadTooLargeError"


class ValidationFailed(AppError):
    status = 422
    type = "ValidationError"

    def __init__(self, message: str, errors: Sequence[dict[str, Any]] = (), **extra: Any) -> None:
        super().__init__(message, {"validation_errors": list(errors), **extra})

    @classmethod
    def at(cls, loc: Sequence[str | int], msg: str, type_: str = "value_error") -> ValidationFailed:
        """One error at a JSON path, e.g. `("blobs", 1, "url")`."""
        where = ".".join(str(p) for p in loc)
        return cls(f"{where}: {msg}", [{"loc": list(loc), "msg": msg, "type": type_}])


class TooManyRequests(AppError):
    status = 429
    type = "TooManyRequestsError"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QuotaExceeded(AppError):
    status = 403
    type = "QuotaExceededError"


class InsufficientStorage(AppError):
    status = 507
    type = "InsufficientStorageError"
