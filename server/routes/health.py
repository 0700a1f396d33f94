"""Liveness and the OpenAPI document."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from ..openapi import COUNT, STRING, api, obj
from ..services import SERVICES
from .demo import demo_api


def _version() -> str:
    try:
        return version("livecart")
    except PackageNotFoundError:
        return "0.0.0"


@api.add("GET", "/healthz", "Liveness and what this process serves", auth=None,
         result=obj(("ok", "rooms", "connections"), ok={"type": "boolean"}, rooms=COUNT, connections=COUNT))
async def healthz(request: web.Request) -> web.Response:
    rooms = request.app[SERVICES].rooms
    return web.json_response({"ok": True, "rooms": len(rooms.rooms),
                              "connections": sum(len(r.conns) for r in rooms.rooms.values())})


@api.add("GET", "/api/openapi.json", "This document", auth=None,
         result=obj(("openapi", "info", "paths"), openapi=STRING, info={"type": "object"}, paths={"type": "object"}))
async def openapi(request: web.Request) -> web.Response:
    spec = api.spec(_version())
    if request.app[SERVICES].config.demo:  # the demo's sign-in routes are in its document only
        spec["paths"] = {**spec["paths"], **demo_api.paths}
    return web.json_response(spec)
