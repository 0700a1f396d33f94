"""HTTP errors as `{"error": {"code", "message"}}` with the right status, for every route."""
from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from functools import partial
from typing import AsyncIterator, Awaitable, Callable

from aiohttp import web

from ..crdt.raw import is_panic
from .store import LockBusy, Store, held_lock

log = logging.getLogger("livecart")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
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


def int_in(body: dict, name: str, low: int, high: int, code: str) -> int:
    """`body[name]` as an integer in low..high (JSON numbers beyond what JavaScript holds
    exactly, or money sums can take, are refused here, before anything is written)."""
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ApiError(400, code, f"{name} must be an integer in {low}..{high}")
    return value


@asynccontextmanager
async def busy_as_409(store: Store, key: str) -> AsyncIterator[None]:
    """Holds a store-wide lock for the block; a caller that cannot get it soon gets a 409."""
    try:
        async with held_lock(store, key):
            yield
    except LockBusy:
        raise ApiError(409, "busy", "someone else is changing this right now; try again") from None
