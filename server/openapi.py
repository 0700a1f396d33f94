"""Routes that describe themselves: each HTTP handler is registered with its OpenAPI entry."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ERROR = {"$ref": "#/components/schemas/Error"}


@dataclass
class ApiRoutes:
    """An aiohttp route table plus the OpenAPI paths of the same routes."""

    routes: web.RouteTableDef = field(default_factory=web.RouteTableDef)
    paths: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, method: str, path: str, summary: str, *, auth: str | None = "any",
            body: dict[str, Any] | None = None, ok: int = 200, result: dict[str, Any] | None = None,
            query: dict[str, str] | None = None, errors: tuple[int, ...] = ()) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.route(method, path)(handler)
            op: dict[str, Any] = {"summary": summary, "operationId": handler.__name__}
            params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                      for n in re.findall(r"{(\w+)}", path)]
            params += [{"name": n, "in": "query", "description": d, "schema": {"type": "string"}}
                       for n, d in (query or {}).items()]
            if params:
                op["parameters"] = params
            if auth:
                op["security"] = [{"bearer": []}]
                op["description"] = f"Roles: {auth}."
            if body is not None:
                op["requestBody"] = {"required": True,
                                     "content": {"application/json": {"schema": body}}}
            responses: dict[str, Any] = {
                str(ok): {"description": "OK",
                          "content": {"application/json": {"schema": result or {"type": "object"}}}}}
            for status in sorted({400, *errors, *((401, 403) if auth else ())}):
                responses[str(status)] = {"description": "error",
                                          "content": {"application/json": {"schema": ERROR}}}
            op["responses"] = responses
            self.paths.setdefault(path, {})[method.lower()] = op
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


def obj(required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    """A JSON-schema object, shorthand for the route declarations."""
    return {"type": "object", "required": list(required), "properties": props}


STRING: dict[str, Any] = {"type": "string"}
INTEGER: dict[str, Any] = {"type": "integer"}


api = ApiRoutes()  # every module with HTTP routes registers them here
