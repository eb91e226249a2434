"""The route class of every router: request JSON is parsed strictly before FastAPI sees it;
the one of the hottest routes, answered by a direct handler (`DirectJsonRoute`); and routers
mounted flat on the app (`include_flat`)."""

from __future__ import annotations

import email.message
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi import routing as fastapi_routing
from fastapi.dependencies.utils import get_dependant
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.routing import APIRoute, APIRouter
from starlette.requests import ClientDisconnect
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


class DirectJsonRoute(StrictJsonRoute):
    """A hot route answered directly when the request is the usual one (a body declared
    `application/json`), skipping FastAPI's generic dependency solving, which is a large share
    of a fast route's cost. Any other request (no body, another content type) takes FastAPI's
    path, so every edge case answers as before.

    The endpoint must take its path parameters, `body` and `scope`, where `scope` is a
    dependency of the request and headers only (`deps.ReadScope`, `deps.WriteScope`). The
    direct path calls that dependency, then validates the body (FastAPI's order: the key and
    namespace are refused before the body's fields), then the endpoint; `validated_body` and
    `answer` do what FastAPI does with the body and the return value. A route whose endpoint
    has another shape, or that an `include_router` gave more dependencies, keeps FastAPI's
    path. Use it as `add_api_route(..., route_class_override=DirectJsonRoute)`.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        scope_of = self._scope_dependency()
        if scope_of is None:
            return handle
        endpoint = self.endpoint

        async def direct_handler(request: Request) -> Response:
            if not _json_body_declared(request.scope):
                return await handle(request)
            value = jsonbody.parse(await _read_body(request))
            scope = await scope_of(request)
            body = self.validated_body(value)
            return self.answer(await endpoint(**request.path_params, body=body, scope=scope))

        return direct_handler

    def _scope_dependency(self) -> Callable[[Request], Awaitable[Any]] | None:
        """The endpoint's `scope` dependency as a function of the request, or None where the
        route does not have the shape the direct path serves (see the class)."""
        if self.body_field is None or self._has_added_dependencies():
            return None
        taken = set(inspect.signature(self.endpoint).parameters)
        if (
            taken != {*self.param_convertors, "body", "scope"}
            or len(self.dependant.dependencies) != 1
        ):
            return None
        dependency = self.dependant.dependencies[0]  # `scope`: the endpoint's only one
        call, request_name = dependency.call, dependency.request_param_name
        needs = (
            dependency.dependencies,
            dependency.path_params,
            dependency.query_params,
            dependency.cookie_params,
            dependency.body_params,
        )
        if dependency.name != "scope" or any(needs) or request_name is None:
            return None
        if not inspect.iscoroutinefunction(call):
            return None
        headers = [(h.name, h.alias.lower()) for h in dependency.header_params]

        async def scope_of(request: Request) -> Any:
            given = {name: request.headers.get(alias) for name, alias in headers}
            return await call(**{request_name: request}, **given)

        return scope_of

    def _has_added_dependencies(self) -> bool:
        """Whether the route runs dependencies beyond its endpoint's parameters (the route's
        `dependencies=`, or an `include_router(..., dependencies=...)`)."""
        own = get_dependant(path=self.path_format, call=self.endpoint)
        dependant = self.dependant
        # FastAPI's hook for the included copy of a route (private; absent from versions that
        # do not copy routes, where `self.dependant` has them all).
        context_var = getattr(fastapi_routing, "_effective_route_context_var", None)
        context = context_var.get() if context_var is not None else None
        if context is not None and getattr(context, "original_route", None) is self:
            dependant = context.dependant
        return len(dependant.dependencies) != len(own.dependencies)

    def validated_body(self, value: Any) -> Any:
        """The JSON body validated as FastAPI does (errors located under `body`)."""
        assert self.body_field is not None
        body, errors = self.body_field.validate(value, {}, loc=("body",))
        if errors:
            raise RequestValidationError(errors, body=value)
        return body

    def answer(self, content: Any) -> Response:
        """The endpoint's return value as FastAPI answers it: checked against the response
        model, then serialised by pydantic straight to JSON bytes."""
        field = self.response_field
        assert field is not None
        value, errors = field.validate(content, {}, loc=("response",))
        if errors:
            raise ResponseValidationError(errors, body=content)
        body = field.serialize_json(
            value,
            include=self.response_model_include,
            exclude=self.response_model_exclude,
            by_alias=self.response_model_by_alias,
            exclude_unset=self.response_model_exclude_unset,
            exclude_defaults=self.response_model_exclude_defaults,
            exclude_none=self.response_model_exclude_none,
        )
        return Response(body, status_code=self.status_code or 200, media_type="application/json")


async def _read_body(request: Request) -> bytes:
    """The body, read from `receive` (Starlette's `body()` goes through an async generator)."""
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json_body_declared(scope: Scope) -> bool:
    """Whether the request declares a non-empty body of exactly `application/json`."""
    content_type = length = None
    for name, value in scope["headers"]:
        if name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"content-length" and length is None:
            length = value
        elif name == b"transfer-encoding":
            return False  # chunked bodies take the ordinary path
    return content_type == b"application/json" and length is not None and length.strip() != b"0"


def include_flat(
    app: FastAPI, router: APIRouter, responses: dict[int | str, dict[str, Any]] | None = None
) -> None:
    """Add `router`'s routes to the app's own route list, as `include_router` did before
    FastAPI kept included routers as a layer of their own.

    That layer matches a request twice (once to pick the router, once inside it) and re-reads
    the router's route list on every request: ~100-140 µs of a ~700 µs object registration.
    Routes of the app itself are matched once, in order. Each route is added with everything
    it was declared with, so the OpenAPI document, its operation ids and every answer stay
    the same; `responses` are the including level's (the route's own win, as in FastAPI).
    """
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"include_flat takes API routes only, not {route!r}")
        app.router.add_api_route(
            route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            dependencies=route.dependencies,
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses={**(responses or {}), **route.responses},
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            route_class_override=type(route),
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
        )
