"""The route class of every router: request JSON is parsed strictly before FastAPI sees it."""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from assay.kit import jsonbody


class StrictJsonRequest(Request):
    """A request whose `json()` is `jsonbody.parse` (FastAPI reads bodies through it)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = jsonbody.parse(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """Parses a JSON body up front, so a body JSON text cannot hold is a 422 naming the field
    (FastAPI itself would turn any error raised while parsing into a generic 400)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        takes_body = self.body_field is not None

        async def strict_handler(request: Request) -> Response:
            strict = StrictJsonRequest(request.scope, request.receive)
            if takes_body and _is_json(strict) and await strict.body():
                await strict.json()
            return await handle(strict)

        return strict_handler


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
