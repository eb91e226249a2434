"""Errors the client raises; each carries the server's error envelope.

AssayError (status, type, message, details)
├── AssayConnectionError (status 0: the server could not be reached or the answer was cut off)
├── BadRequest (400)
├── Unauthorized (401)
├── Forbidden (403)
├── NotFound (404)
├── Conflict (409 ConflictError: wrong state, Idempotency-Key reused with another body)
│   └── AlreadyExists (409 AlreadyExistsError: the name is taken)
├── PayloadTooLarge (413)
├── ValidationError (422, `validation_errors`: [{loc, msg, type}])
├── RateLimited (429, `retry_after`)
├── ServerError (5xx)
├── UploadFailed (an upload's bytes could not be sent; `state` resumes it)
└── WaitTimeout (also a TimeoutError: a batch did not finish in time; `batch` is the last seen)
"""

from __future__ import annotations

import email.utils
import re
import time
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from assay.client.models import Batch, UploadState


class AssayError(Exception):
    """An error answer from Assay (or no answer at all), as its envelope describes it."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        type: str = "AssayError",
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.details: dict[str, Any] = details or {}
        self.request_id = request_id

    def __str__(self) -> str:
        prefix = f"{self.status} {self.type}" if self.status else self.type
        return f"{prefix}: {self.message}"


class AssayConnectionError(AssayError):
    """The request never got an answer: refused, timed out, or cut off midway."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=0, type="ConnectionError")


class BadRequest(AssayError):
    pass


class Unauthorized(AssayError):
    pass


class Forbidden(AssayError):
    pass


class NotFound(AssayError):
    pass


class Conflict(AssayError):
    pass


class AlreadyExists(Conflict):
    pass


class PayloadTooLarge(AssayError):
    pass


class ValidationError(AssayError):
    @property
    def validation_errors(self) -> list[dict[str, Any]]:
        """The failed checks, each `{loc, msg, type}` with `loc` the JSON path of the field."""
        return list(self.details.get("validation_errors") or [])


class RateLimited(AssayError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(AssayError):
    pass


class UploadFailed(AssayError):
    """The bytes of an upload could not be sent; pass `state` as `resume=` to send the rest."""

    def __init__(self, message: str, state: UploadState, cause: AssayError | None = None) -> None:
        super().__init__(
            message,
            status=cause.status if cause else 0,
            type="UploadFailed",
            details=cause.details if cause else None,
        )
        self.state = state


class WaitTimeout(AssayError, TimeoutError):
    """A batch was still running when the wait's timeout ran out."""

    def __init__(self, message: str, batch: Batch) -> None:
        super().__init__(message, type="WaitTimeout")
        self.batch = batch


_BY_STATUS: dict[int, type[AssayError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
    429: RateLimited,
}
_S3_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.S)


def retry_after_s(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds (it may be a number or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def from_response(response: httpx.Response) -> AssayError:
    """The typed error for a non-2xx answer, from its envelope when it has one."""
    status = response.status_code
    err_type, message, details, request_id = f"HTTP{status}", "", None, None
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        err_type = str(error.get("type") or err_type)
        message = str(error.get("message") or "")
        details = error.get("details") if isinstance(error.get("details"), dict) else None
        request_id = (details or {}).get("request_id") or body.get("request_id")
    elif isinstance(body, dict) and "detail" in body:
        message = str(body["detail"])
    else:
        # S3 answers presigned-URL failures in XML
        found = _S3_MESSAGE.search(response.text or "")
        message = found.group(1) if found else (response.text or "").strip()[:300]
    message = message or response.reason_phrase or f"HTTP {status}"
    kw: dict[str, Any] = {
        "status": status, "type": err_type, "details": details, "request_id": request_id,
    }  # fmt: skip
    if status == 409 and err_type == "AlreadyExistsError":
        return AlreadyExists(message, **kw)
    if status == 429:
        return RateLimited(message, retry_after=retry_after_s(response), **kw)
    if status >= 500:
        return ServerError(message, **kw)
    return _BY_STATUS.get(status, AssayError)(message, **kw)
