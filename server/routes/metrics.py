"""GET /metrics (Prometheus text of this process) and the middleware that counts HTTP requests."""
from __future__ import annotations

import time
from typing import Awaitable, Callable

from aiohttp import web

from ..metrics import CONTENT_TYPE
from ..openapi import STRING, api
from ..services import SERVICES

OUTBOXES = ("outbox", "outbox-dead", "mail-outbox", "mail-outbox-dead", "mailing-outbox")  # waiting, and given up on


@api.add("GET", "/metrics", "Prometheus metrics of this process (each process serves its own)", auth=None,
         media="text/plain", result=STRING)
async def metrics(request: web.Request) -> web.Response:
    registry = request.app[SERVICES].metrics
    await registry.refresh(OUTBOXES)
    return web.Response(body=registry.text(), headers={"Content-Type": CONTENT_TYPE})


@web.middleware
async def count_requests(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Requests by method, route (the route's pattern, never the raw path: bounded) and status."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        services = request.app.get(SERVICES)
        if services is not None:
            services.metrics.request(request.method, name, status, time.perf_counter() - started)
