"""Prometheus metrics of one app: its own CollectorRegistry (no globals), counters the server bumps and
figures read at scrape time (connections, rooms, holds, outbox depth)."""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pycrdt import Map

from .hooks import Edit, Extension

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CART_ENDPOINT = "/ws/carts/{cartId}"
STORE_WAIT = 2.0  # seconds a scrape waits for the store's figures

# Edit latencies: a relay is ~1 ms on an idle server, tens of ms at load; a commit well under that.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# A rejection's reason names the rule in words (and the SKU or line); the label is the rule alone, so
# that the number of series stays bounded whatever clients send.
_RULES = [
    (r"too many chat messages", "rate"), (r"chat", "chat"), (r"keyed content", "malformed_update"),
    (r"'server' root", "server_root"), (r"^unknown root", "unknown_root"), (r"^too many lines", "too_many_lines"),
    (r"must be a map", "line_shape"), (r"line id too long", "line_id"), (r"unknown sku", "unknown_sku"),
    (r"qty must be", "qty"), (r"personalisation", "personalisation"), (r"^meta:", "meta"),
    (r"unknown field", "unknown_field"), (r"addedAt|must be a non-empty string|sku must be", "line_field"),
    (r"document too large", "doc_size"), (r"^malformed update|list content", "malformed_update"),
    (r"depends on|missing|not seen", "missing_dependencies"), (r"awareness", "awareness"),
    (r"^message over", "frame_size"), (r"messages per second", "rate"), (r"^cart is ", "cart_status"),
    (r"y-protocols|binary|frame|UTF-8|state vector", "protocol"),
]


def rule_of(reason: str) -> str:
    """The rule a rejection broke, as a short fixed label (`other` if none fits)."""
    for pattern, rule in _RULES:
        if re.search(pattern, reason):
            return rule
    return "other"


@dataclass
class Sources:
    """What the scrape reads from the running server; filled in by the app factory (all optional)."""

    connections: Callable[[], Iterable[tuple[str, str, str]]] = lambda: ()  # (kind, role, endpoint) per open one
    rooms: Callable[[], int] = lambda: 0
    holds: Callable[[], Iterable[str]] = lambda: ()  # the status of every hold shown in a loaded cart
    records: Callable[[str], Awaitable[int]] | None = None  # how many records of a kind the store has


class _Live(Collector):
    """Figures read when scraped: open connections by kind, role and endpoint, loaded rooms, holds by status."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[GaugeMetricFamily]:
        connections = GaugeMetricFamily("livecart_connections", "Open long-lived connections (websockets, "
                                        "event streams) by kind, role and endpoint", labels=["kind", "role", "endpoint"])
        counts: dict[tuple[str, str, str], int] = {}
        for key in self.sources.connections():
            counts[key] = counts.get(key, 0) + 1
        for key, n in sorted(counts.items()):
            connections.add_metric(list(key), n)
        yield connections
        yield GaugeMetricFamily("livecart_rooms", "Carts loaded in this process", value=self.sources.rooms())
        holds = GaugeMetricFamily("livecart_holds", "Holds shown in the loaded carts, by status", labels=["status"])
        by_status: dict[str, int] = {}
        for status in self.sources.holds():
            by_status[status] = by_status.get(status, 0) + 1
        for status, n in sorted(by_status.items()):
            holds.add_metric([status], n)
        yield holds


@dataclass
class Metrics:
    """The metrics of one app. Each app (each test server) has its own registry."""

    sources: Sources = field(default_factory=Sources)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.edits = Counter("livecart_edits_accepted", "Edits accepted (a client's update, or an HTTP line edit)",
                             registry=r)
        self.loads = Counter("livecart_rooms_loaded", "Carts loaded into this process", registry=r)
        self.unloads = Counter("livecart_rooms_unloaded", "Carts unloaded from this process", registry=r)
        self.rejections = Counter("livecart_edits_rejected", "Client messages rejected, by rule and close code",
                                  ["rule", "code"], registry=r)
        self.closes = Counter("livecart_socket_closes", "Websockets closed by the server, by close code",
                              ["code"], registry=r)
        self.relay = Histogram("livecart_relay_seconds", "A client message from arrival to relayed (validate, "
                               "decide, commit, relay)", buckets=LATENCY_BUCKETS, registry=r)
        self.commit = Histogram("livecart_commit_seconds", "An update appended to the store, until durable",
                                buckets=LATENCY_BUCKETS, registry=r)
        self.decisions = Counter("livecart_stock_decisions", "Stock decisions shown in carts, by outcome",
                                 ["status"], registry=r)
        self.expiries = Counter("livecart_hold_expiries", "Holds that ran out", registry=r)
        self.catch_ups = Counter("livecart_bus_catch_ups", "Updates a room read from the store because the bus "
                                 "lost or reordered them (gaps, reconnects)", registry=r)
        self.reconnects = Counter("livecart_bus_reconnects", "Times the bus came back after an outage", registry=r)
        self.bus_lag = Histogram("livecart_bus_lag_seconds", "Age of a bus message (a cart's update or awareness "
                                 "from another process, a shop event, a stock change, ...) when this process hears "
                                 "it, by topic", ["topic"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0), registry=r)
        self.outbox_failures = Counter("livecart_outbox_failures", "Outbox attempts (webhooks, mail) that failed, "
                                       "by outbox and outcome", ["outbox", "outcome"], registry=r)
        self.outbox = Gauge("livecart_outbox_depth", "Events waiting in an outbox (at the last scrape)",
                            ["outbox"], registry=r)
        self.store_up = Gauge("livecart_store_up", "1 if the store answered the last scrape, else 0", registry=r)
        self.requests = Counter("livecart_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.request_seconds = Histogram("livecart_http_request_seconds", "HTTP request duration by route",
                                         ["route"], buckets=LATENCY_BUCKETS, registry=r)
        r.register(_Live(self.sources))

    # -- what the server reports -------------------------------------------------------------

    def accepted(self) -> None:
        self.edits.inc()

    def relayed(self, seconds: float) -> None:
        self.relay.observe(seconds)

    def committed(self, seconds: float) -> None:
        self.commit.observe(seconds)

    def caught_up(self, updates: int) -> None:
        self.catch_ups.inc(updates)

    def rejected(self, reason: str, code: int) -> None:
        self.rejections.labels(rule_of(reason), str(code)).inc()

    def outbox_failed(self, outbox: str, kind: str) -> None:
        self.outbox_failures.labels(outbox, kind).inc()

    def closed(self, code: int) -> None:
        self.closes.labels(str(code)).inc()

    def decided(self, statuses: Iterable[str]) -> None:
        for status in statuses:
            self.decisions.labels(status).inc()

    def heard(self, topic: str, seconds: float) -> None:
        """A bus message heard `seconds` after it was sent; `topic` is "cart" or an event topic (a bounded set)."""
        self.bus_lag.labels(topic).observe(seconds)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(route).observe(seconds)

    # -- the scrape ----------------------------------------------------------------------------

    async def refresh(self, outboxes: Iterable[str]) -> None:
        """Reads the figures that need the store; a store that is away leaves store_up 0, not an error."""
        if self.sources.records is None:
            return
        try:
            for kind in outboxes:
                self.outbox.labels(kind).set(await asyncio.wait_for(self.sources.records(kind), STORE_WAIT))
        except Exception:  # Redis away, or too slow to answer: the scrape still answers, with store_up 0
            self.store_up.set(0)
            return
        self.store_up.set(1)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class RoomMetrics(Extension):
    """The rooms' extension (server/hooks.py): accepted edits (a client's or an HTTP one), rooms loaded
    and unloaded. The sync core's own figures (latencies, decisions, rejections) it reports itself."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_edit(self, room: Any, edit: Edit) -> None:
        self.metrics.accepted()

    def on_load(self, room: Any) -> None:
        self.metrics.loads.inc()

    def on_unload(self, room: Any) -> None:
        self.metrics.unloads.inc()


def watch(metrics: Metrics, store: Any, stock: Any, bus: Any, rooms: Any, stock_feed: Any, events: Any,
          outboxes: Iterable[Any]) -> None:
    """What the scrape reads from the running services, and the listeners that count as things happen."""
    for outbox in outboxes:
        outbox.metrics = metrics
    sources = metrics.sources
    sources.rooms = lambda: len(rooms.rooms)
    sources.connections = lambda: [
        *(("cart", conn.who.role, CART_ENDPOINT) for room in list(rooms.rooms.values()) for conn in room.conns),
        *(("events", sub.role, sub.endpoint) for sub in list(events.subscribers)),
        *(("stock", sub.role, sub.endpoint) for sub in list(stock_feed.subscribers))]
    sources.holds = lambda: (status for room in list(rooms.rooms.values()) for status in _hold_statuses(room.cart))

    async def count_records(kind: str) -> int:
        return len(await store.list_records(kind))

    async def expired(cart_id: str, decisions: dict[str, Any]) -> None:
        metrics.expiries.inc(len(decisions))

    async def reconnected() -> None:
        metrics.reconnects.inc()

    sources.records = count_records
    stock.hold_listeners.append(expired)
    bus.reconnected.append(reconnected)
    bus.heard.append(metrics.heard)


def _hold_statuses(cart: Any) -> list[str]:
    """The status of every hold a cart document shows."""
    with cart.doc.transaction():
        holds = cart.server.get("holds")
        return [str(h.get("status")) for h in holds.values() if isinstance(h, dict)] if isinstance(holds, Map) else []


class NoMetrics:
    """Where nothing is measured (a Rooms made outside an app): every report is a no-op."""

    def __getattr__(self, name: str) -> Any:
        return _nothing


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


NO_METRICS: Any = NoMetrics()
