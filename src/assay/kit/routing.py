"""The route class of every router: request JSON is parsed strictly before FastAPI sees it."""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope

from assay.kit import jsonbody


class StrictJsonRequest(Request):
    """A request whose `json()` is `jsonbody.parse` (FastAPI reads bodies through it); an
    absent body reads as `empty` (`{}` where the route takes a JSON body)."""

    def __init__(self, scope: Scope, receive: Receive, empty: bytes = b"") -> None:
        super().__init__(scope, receive)
        self._empty = empty

    async def body(self) -> bytes:
        return await super().body() or self._empty

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = jsonbody.parse(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """Parses a JSON body up front, so a body JSON text cannot hold is a 422 naming the field
    (FastAPI itself would turn any error raised while parsing into a generic 400).

    A route that takes a JSON body reads a missing one as `{}`: the hosted product's clients
    send no body to `POST .../list` and the like, where every field is optional. A route that
    does need fields answers 422 naming them, as for any other body that lacks them.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        takes_body = self.body_field is not None

        async def strict_handler(request: Request) -> Response:
            if takes_body and _sent_no_body(request):
                strict = StrictJsonRequest(_as_json(request.scope), request.receive, b"{}")
            else:
                strict = StrictJsonRequest(request.scope, request.receive)
            if takes_body and _is_json(strict):
                await strict.json()
            return await handle(strict)

        return strict_handler


def _sent_no_body(request: Request) -> bool:
    """Whether the request has no body at all (HTTP/1.1: no length, or zero, and no chunks)."""
    headers = request.headers
    length = headers.get("content-length")
    return "transfer-encoding" not in headers and (length is None or length.strip() == "0")


def _as_json(scope: Scope) -> Scope:
    """`scope` with its body declared as JSON (for the `{}` a body-less request reads as)."""
    kept = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
    return {**scope, "headers": [*kept, (b"content-type", b"application/json")]}


def _is_json(request: Request) -> bool:
    """Whether FastAPI would read this body as JSON (no content type counts, as in FastAPI)."""
    content_type = request.headers.get("content-type")
    if not content_type:
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
