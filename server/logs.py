"""Logging: text or JSON lines, the access log (no tokens), one line per shop event, reopened on SIGHUP."""
from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from typing import Any, Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

FORMATS = ("text", "json")
events = logging.getLogger("livecart.events")
access = logging.getLogger("livecart.access")

REQUEST_ID = web.RequestKey("livecart.request_id", str)
# Fields never written to a log, whatever their value: credentials and message bodies.
SECRET_FIELDS = frozenset({"token", "anonymousToken", "authorization", "password", "secret", "body", "html", "text"})
# Shop events worth a line at info; the rest (every edit's line_added, presence) go at debug.
QUIET_EVENTS = frozenset({"cart.line_added", "cart.line_removed", "cart.presence", "checkout.step"})
_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_TOKEN_IN_QUERY = re.compile(r"(?i)(^|&)(token|access_token|anonymousToken)=[^&]*")


def clean(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields a log line may carry: secrets and bodies dropped, whatever the caller passed."""
    return {k: v for k, v in fields.items() if k not in SECRET_FIELDS}


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """One line for one meaningful event (`cart.created`, `edit.rejected`, `order.status`, …)."""
    if not events.isEnabledFor(level):
        return
    fields = clean(fields)
    text = " ".join(f"{k}={_text(v)}" for k, v in fields.items())
    events.log(level, "%s %s" if text else "%s%s", name, text, extra={"event": name, "fields": fields})


def shop_event(data: dict[str, Any]) -> None:
    """A shop-floor feed event as a log line (the feed is the list of what happens in the shop)."""
    name = str(data.get("type", "event"))
    event(name, logging.DEBUG if name in QUIET_EVENTS else logging.INFO,
          **{k: v for k, v in data.items() if k not in ("type", "at", "present", "shop")})


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return json.dumps(text) if not text or any(c in text for c in ' "=\n') else text


def redacted_query(query_string: str) -> str:
    """A query string without its token (a browser's socket and event stream carry it there)."""
    return _TOKEN_IN_QUERY.sub(r"\1\2=[redacted]", query_string)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if hasattr(record, "event"):
            line["event"] = record.event
            line.update(record.fields)  # type: ignore[attr-defined]
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class ReopenableFileHandler(logging.FileHandler):
    """A log file that `reopen()` (SIGHUP) closes and opens again, so logrotate can move it away."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


def configure(level: str = "info", fmt: str = "text", file: str | None = None) -> logging.Handler:
    """Sets up the root logger for the CLI: one handler (stderr or `file`), text or JSON lines."""
    handler: logging.Handler = ReopenableFileHandler(file, encoding="utf-8") if file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # ours is livecart.access
    return handler


def reopen() -> None:
    """SIGHUP: every log file is closed and opened again (stderr has nothing to reopen)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ReopenableFileHandler):
            handler.reopen()
    events.info("logs reopened", extra={"event": "logs.reopened", "fields": {}})


def request_id(request: web.Request) -> str:
    return str(request.get(REQUEST_ID, ""))


@web.middleware
async def request_ids(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every request gets an id (the balancer's `X-Request-Id` if it is a sane one), echoed in the answer."""
    given = request.headers.get("X-Request-Id", "")
    rid = given if _ID_OK.match(given) else secrets.token_hex(8)
    request[REQUEST_ID] = rid
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = rid
        raise
    if not response.prepared:  # a websocket or a stream has sent its headers already
        response.headers["X-Request-Id"] = rid
    return response


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path (its query without any token), status, duration, request id."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_taken: float) -> None:
        query = redacted_query(request.query_string)
        fields = {"method": request.method, "path": request.path + (f"?{query}" if query else ""),
                  "status": response.status, "ms": round(time_taken * 1000, 1),
                  "request_id": request.get(REQUEST_ID, "-")}
        self.logger.info("%s %s %s %.1fms id=%s", fields["method"], fields["path"], fields["status"], fields["ms"],
                         fields["request_id"], extra={"event": "http.request", "fields": fields})

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
