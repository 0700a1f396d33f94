"""Browsing presence: which product each storefront shows and whether its tab is visible (issue 19 #2).

One `Browser` per `/ws/stock` connection. The service counts the viewers of each product (visible
tabs only: a hidden tab is nobody looking), tells the shop floor (`browse.view`, `browse.away`,
`browse.back`, `browse.left`, and a bounded `browse.summary` a second), and checks what browsers say
(an unknown SKU, a bad message, a flood). It knows nothing of aiohttp; `server/feeds.py` reads the
socket and hands each message to `Browsing.receive`.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import orjson

from .clock import now_ms
from .store import Store

log = logging.getLogger("livecart.browsing")
VIEW_MESSAGE_BYTES = 1024  # a view or visibility message is a few dozen bytes
SUMMARY_EVERY = 1.0  # seconds between two `browse.summary` events (when something changed)
SUMMARY_IDLE_EVERY = 5.0  # seconds between two summaries when nothing changed (while anyone browses)
VIEWERS_EVERY = 1.0  # seconds between two viewer-count announcements (only the SKUs whose count moved)
RECENT = 12  # browsers in a summary: the most recently active
TOP_PRODUCTS = 10
HAS_CART_RECHECK = 10.0  # seconds before a browser's "has a cart" is asked of the store again
ANONYMOUS = "anonymous"


@dataclass
class Browser:
    """One storefront tab (one `/ws/stock` socket)."""

    id: str
    who: str  # the token's subject, or "anonymous" without a token
    sku: str | None = None
    visible: bool = True
    since: int = field(default_factory=now_ms)  # when it began to view `sku` (ms)
    active: int = field(default_factory=now_ms)  # its last view or visibility change (ms)
    has_cart: bool = False
    checked: float = 0.0  # monotonic time of the last has-cart check
    tokens: float = 0.0  # its inbound rate budget
    last: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "who": self.who, "sku": self.sku, "visible": self.visible, "since": self.since,
                "hasCart": self.has_cart}


class BadMessage(Exception):
    """A message that ends its connection: `code` and `reason` are the websocket close."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


REJECTED, TOO_LARGE, TOO_FAST = 4400, 4413, 4429


class Browsing:
    """Every browser of this process, what it views, and who is told."""

    def __init__(self, publish: Callable[[str, dict[str, Any]], None], known_sku: Callable[[str], bool],
                 has_cart: Callable[[str], Awaitable[bool]], rate: float) -> None:
        self._publish = publish  # (event type, data) → the shop floor
        self._known_sku = known_sku
        self._has_cart = has_cart
        self._rate = rate
        self.browsers: dict[str, Browser] = {}
        self.viewers: Counter[str] = Counter()  # sku → visible browsers viewing it
        self.on_viewers: Callable[[set[str]], Awaitable[None]] | None = None  # the stock feed announces these
        self._moved: set[str] = set()  # SKUs whose viewer count changed since the last announcement
        self._dirty = False  # something for the next summary
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(3)  # browser ids stay apart across processes
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._tick())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _tick(self) -> None:
        """Viewer counts and the summary go out at most once per period, whatever the traffic."""
        summary_at = 0.0
        while True:
            await asyncio.sleep(min(VIEWERS_EVERY, SUMMARY_EVERY))
            try:
                summary_at = await self._flush(summary_at)
            except Exception:  # one bad round must not end presence for the process
                log.exception("browsing: flush failed")

    async def _flush(self, summary_at: float) -> float:
        """Announces moved viewer counts; publishes a summary when due. Returns when it last did."""
        if self._moved:
            moved, self._moved = self._moved, set()
            if self.on_viewers is not None:
                await self.on_viewers(moved)
        loop_now = time.monotonic()
        # Also now and then when nothing moved: a shop floor opened since learns who is here.
        due = self._dirty or (self.browsers and loop_now - summary_at >= SUMMARY_IDLE_EVERY)
        if due and loop_now - summary_at >= SUMMARY_EVERY:
            self._dirty, summary_at = False, loop_now
            self._publish("browse.summary", self.summary())
        return summary_at

    # -- browsers ---------------------------------------------------------------------------------

    def join(self, who: str | None) -> Browser:
        browser = Browser(f"b-{self._prefix}-{next(self._ids)}", who or ANONYMOUS, tokens=self._rate,
                          last=time.monotonic())
        self.browsers[browser.id] = browser
        return browser

    def leave(self, browser: Browser) -> None:
        if self.browsers.pop(browser.id, None) is None:
            return
        self._count(browser, -1)
        if browser.sku is not None:
            self._publish("browse.left", {"id": browser.id, "who": browser.who})
        self._dirty = True

    def count(self, sku: str) -> int:
        return self.viewers.get(sku, 0)

    def receive(self, browser: Browser, data: str | bytes) -> None:
        """One message from a browser; raises BadMessage for what ends its connection.
        An unknown SKU is not fatal: the browser is told (`error` message) by the caller."""
        self._spend(browser)
        if len(data) > VIEW_MESSAGE_BYTES:
            raise BadMessage(TOO_LARGE, f"browsing messages are at most {VIEW_MESSAGE_BYTES} bytes")
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise BadMessage(REJECTED, "not JSON: send {\"type\": \"view\", \"sku\": ...}") from None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "view":
            sku = message.get("sku")
            if sku is not None and not isinstance(sku, str):
                raise BadMessage(REJECTED, "view: sku is a string or null")
            self.view(browser, sku)
        elif kind == "visibility":
            state = message.get("state")
            if state not in ("visible", "hidden"):
                raise BadMessage(REJECTED, "visibility: state is 'visible' or 'hidden'")
            self.visibility(browser, state == "visible")
        else:
            raise BadMessage(REJECTED, "unknown message: type is 'view' or 'visibility'")

    def _spend(self, browser: Browser) -> None:
        """A token bucket per browser: `rate` messages a second, bursts of as many."""
        now = time.monotonic()
        browser.tokens = min(self._rate, browser.tokens + (now - browser.last) * self._rate)
        browser.last = now
        if browser.tokens < 1:
            raise BadMessage(TOO_FAST, f"over {int(self._rate)} messages per second")
        browser.tokens -= 1

    def view(self, browser: Browser, sku: str | None) -> None:
        if sku is not None and not self._known_sku(sku):
            raise UnknownSku(sku)
        if sku == browser.sku:
            return
        self._count(browser, -1)
        browser.sku, browser.since, browser.active = sku, now_ms(), now_ms()
        self._count(browser, +1)
        self._dirty = True
        self._publish("browse.view", browser.to_json())
        self._recheck_cart(browser)

    def visibility(self, browser: Browser, visible: bool) -> None:
        if visible == browser.visible:
            return
        self._count(browser, -1)
        browser.visible, browser.active = visible, now_ms()
        self._count(browser, +1)
        self._dirty = True
        self._publish("browse.back" if visible else "browse.away",
                      {"id": browser.id, "who": browser.who, "sku": browser.sku})

    def _count(self, browser: Browser, delta: int) -> None:
        if browser.sku is None or not browser.visible:
            return
        self.viewers[browser.sku] += delta
        if self.viewers[browser.sku] <= 0:
            del self.viewers[browser.sku]
        self._moved.add(browser.sku)

    def _recheck_cart(self, browser: Browser) -> None:
        if browser.who == ANONYMOUS or time.monotonic() - browser.checked < HAS_CART_RECHECK:
            return
        browser.checked = time.monotonic()
        asyncio.ensure_future(self._check_cart(browser))

    async def _check_cart(self, browser: Browser) -> None:
        try:
            has = await self._has_cart(browser.who)
        except Exception:  # the store is away: the panel says what it knew
            return
        if has != browser.has_cart and browser.id in self.browsers:
            browser.has_cart = has
            self._dirty = True
            self._publish("browse.view", browser.to_json())

    # -- the shop floor's bounded view -------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """What a shop floor needs whatever the crowd: totals, the busiest products, the latest few."""
        browsing = [b for b in self.browsers.values() if b.sku is not None]
        away = sum(1 for b in browsing if not b.visible)
        recent = sorted(browsing, key=lambda b: b.active, reverse=True)[:RECENT]
        return {"process": self._prefix, "browsing": len(browsing), "away": away,
                "withCart": sum(1 for b in browsing if b.has_cart),
                "products": [{"sku": sku, "viewers": n} for sku, n in self.viewers.most_common(TOP_PRODUCTS)],
                "recent": [b.to_json() for b in recent]}


async def has_open_cart(store: Store, owner: str) -> bool:
    """Whether the owner has a cart that is not closed (ordered, merged): for the browsing panel."""
    carts = await store.list_carts(owner)
    if not carts:
        return False
    closed = await store.list_records("cart-closed")
    return any(record.id not in closed for record in carts)


class UnknownSku(Exception):
    def __init__(self, sku: str) -> None:
        super().__init__(f"no product {sku!r} in the catalog")
        self.sku = sku
