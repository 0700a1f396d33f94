"""Routes that describe themselves: each HTTP handler is registered with its OpenAPI entry and its access rule."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from aiohttp import web

from ..crdt.schema import MAX_AMOUNT, MAX_PRICE, MAX_QTY, MAX_SAFE_INTEGER, MAX_STOCK

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Guard(Protocol):
    """A route's access rule (server/guard.py): what the document says of it, and its check."""

    doc: str

    async def __call__(self, request: web.Request) -> None:
        """Returns when the caller may go on; raises the 401/403/404 otherwise."""

ERROR = {"$ref": "#/components/schemas/Error"}


@dataclass
class ApiRoutes:
    """An aiohttp route table plus the OpenAPI paths of the same routes."""

    routes: web.RouteTableDef = field(default_factory=web.RouteTableDef)
    paths: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, method: str, path: str, summary: str, *, auth: Guard | None,
            body: dict[str, Any] | None = None, ok: int = 200, result: dict[str, Any] | None = None,
            query: dict[str, str | dict[str, Any]] | None = None, params: dict[str, dict[str, Any]] | None = None,
            errors: tuple[int, ...] = (), also: dict[int, dict[str, Any]] | None = None,
            media: str = "application/json") -> Callable[[Handler], Handler]:
        """`path` may give a path value a regex (`{sku:...}`, aiohttp's syntax); the document shows `{sku}`.
        `query` maps a name to a description or to a whole parameter (`param(...)`), `params` gives a path
        value its schema, `also` other success statuses with their schemas, `media` the success body's type.
        `auth` is enforced here, before the handler runs (None: anyone, no token needed)."""
        def register(handler: Handler) -> Handler:
            self.routes.route(method, path)(handler if auth is None else guarded(auth, handler))
            doc_path = re.sub(r"{(\w+):[^}]*}", r"{\1}", path)
            op: dict[str, Any] = {"summary": summary, "operationId": handler.__name__}
            parameters = [{"name": n, "in": "path", "required": True,
                           "schema": (params or {}).get(n, NON_EMPTY)} for n in re.findall(r"{(\w+)}", doc_path)]
            parameters += [{"name": n, "in": "query", **(param(d) if isinstance(d, str) else d)}
                           for n, d in (query or {}).items()]
            if parameters:
                op["parameters"] = parameters
            if auth is not None:
                op["security"] = [{"bearer": []}]
                op["description"] = f"Roles: {auth.doc}."
            if body is not None:
                op["requestBody"] = {"required": True,
                                     "content": {"application/json": {"schema": body}}}
            responses: dict[str, Any] = {str(status): {"description": "OK", "content": {media: {"schema": schema}}}
                                         for status, schema in {ok: result or {"type": "object"}, **(also or {})}.items()}
            for status in sorted({400, *errors, *((401, 403) if auth is not None else ())}):
                responses[str(status)] = {"description": "error",
                                          "content": {"application/json": {"schema": ERROR}}}
            op["responses"] = responses
            self.paths.setdefault(doc_path, {})[method.lower()] = op
            return handler
        return register

    def spec(self, version: str) -> dict[str, Any]:
        return {
            "openapi": "3.1.0",
            "info": {"title": "livecart", "version": version,
                     "description": "Real-time collaborative carts. Websockets: /ws/carts/{cartId} "
                                    "(y-protocols, ?token=)."},
            "paths": self.paths,
            "components": {
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
                "schemas": {"Error": {
                    "type": "object", "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message"],
                                             "properties": {"code": {"type": "string"},
                                                            "message": {"type": "string"}}}}}},
            },
        }


def guarded(guard: Guard, handler: Handler) -> Handler:
    """The handler behind its access rule: it runs only for callers the rule admits."""
    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        await guard(request)
        return await handler(request)
    return run


def obj(required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    """A JSON-schema object, shorthand for the route declarations."""
    return {"type": "object", "required": list(required), "properties": props}


def param(description: str, schema: dict[str, Any] | None = None, required: bool = False) -> dict[str, Any]:
    """A query parameter: a string unless `schema` says otherwise."""
    return {"description": description, "required": required, "schema": schema or {"type": "string"}}


def integer(minimum: int | None = None, maximum: int | None = None) -> dict[str, Any]:
    bounds = {"minimum": minimum, "maximum": maximum}
    return {"type": "integer", **{k: v for k, v in bounds.items() if v is not None}}


def string(min_length: int = 0, max_length: int | None = None, **more: Any) -> dict[str, Any]:
    bounds = {"minLength": min_length or None, "maxLength": max_length}
    return {"type": "string", **{k: v for k, v in bounds.items() if v is not None}, **more}


STRING: dict[str, Any] = {"type": "string"}
NON_EMPTY: dict[str, Any] = string(1)
INTEGER: dict[str, Any] = {"type": "integer"}
# The bounds the handlers enforce (crdt/schema.py), so the document says what the server does.
COUNT = integer(0, MAX_SAFE_INTEGER)  # the largest integer every JSON reader (JavaScript's included) keeps exact
PRICE = integer(0, MAX_PRICE)
AMOUNT = integer(1, MAX_AMOUNT)
ON_HAND = integer(0, MAX_STOCK)
DELTA = integer(-MAX_STOCK, MAX_STOCK)
QTY = integer(1, MAX_QTY)
SSE = "text/event-stream"
EVENTS: dict[str, Any] = obj(("data",), data=STRING, event=STRING, id=STRING)  # each `data:` holds a JSON event


api = ApiRoutes()  # every module with HTTP routes registers them here
