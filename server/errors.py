"""HTTP errors as `{"error": {"code", "message"}}` with the right status, for every route (services' refusals too)."""
from __future__ import annotations

import json
import logging
from functools import partial
from typing import Awaitable, Callable

from aiohttp import web

from ..crdt.raw import is_panic
from .refusals import Conflict, Forbidden, Invalid, NotFound, Refused, TooMany

log = logging.getLogger("livecart")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


# How the services' refusals show over HTTP.
STATUS: dict[type[Refused], int] = {Invalid: 400, Forbidden: 403, NotFound: 404, Conflict: 409, TooMany: 429}
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except Refused as exc:
        return error_response(STATUS[type(exc)], exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, _HTTP_CODES.get(exc.status, "http_error"), exc.reason)
        if "Allow" in exc.headers:  # a 405 says which methods the route has (RFC 9110 §15.5.6)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal server error")
    except BaseException as exc:  # pycrdt's panics are BaseExceptions: still a 500, never a dropped request
        if not is_panic(exc):
            raise
        log.error("pycrdt panicked on %s %s: %s", request.method, request.path, str(exc).splitlines()[0])
        return error_response(500, "internal", "internal server error")


def _number(text: str) -> float | int:
    """JSON has one kind of number: 320.0 is the integer 320, as JavaScript and JSON Schema read it."""
    value = float(text)
    return int(value) if value.is_integer() and abs(value) <= 2**53 else value


async def json_body(request: web.Request) -> dict:
    """The request's JSON object, or a 400 saying what is wrong with it."""
    try:
        body = await request.json(loads=partial(json.loads, parse_float=_number))
    except ValueError:
        raise ApiError(400, "bad_json", "request body must be JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "request body must be a JSON object")
    return body
