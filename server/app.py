"""The aiohttp application factory: config in, app out; the services live on the app (under SERVICES)."""
from __future__ import annotations

from aiohttp import web

from .config import Config
from .errors import json_errors
from .logs import request_ids
from .pages import add_page_routes
from .routes import add_routes
from .routes.demo import add_demo_routes
from .routes.metrics import count_requests
from .services import SERVICES, services_context

# aiohttp's request line is 8,190 bytes by default: a query of long filters (every character of them
# percent-encoded to 12 bytes) is answered by the route (400 bad_query, JSON) rather than cut off by
# the parser with a text/plain 400 and a logged traceback.
MAX_REQUEST_LINE = 32 * 1024


def create_app(config: Config) -> web.Application:
    if not config.jwt_secret:
        raise ValueError("config.jwt_secret is empty")
    app = web.Application(middlewares=[request_ids, count_requests, json_errors],
                          client_max_size=config.max_message_bytes, handler_args={"max_line_size": MAX_REQUEST_LINE})
    add_routes(app)
    app.cleanup_ctx.append(services_context(config))
    app.on_shutdown.append(_close_connections)
    if config.demo:
        add_demo_routes(app)  # sign in as a demo person: a demo app's alone
        add_page_routes(app)
    return app


async def _close_connections(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for open handlers: long-lived sockets end here.
    services = app.get(SERVICES)
    if services is not None:
        services.close_connections()
