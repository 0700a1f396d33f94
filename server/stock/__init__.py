"""The stock authority: what it decides (Decision, Level), the StockAuthority protocol every
backend implements (the SQLite/memory actor, Redis, Redis Cluster), and how a config picks one."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Protocol, cast

from ..config import Config
from ..store import HoldRow, StockLog, Store, is_embedded


class StockError(Exception):
    """A stock command that cannot be carried out (the state is unchanged, unless the command says
    otherwise); `lines` names the lines it failed for, where it is about lines."""

    def __init__(self, code: str, message: str, lines: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code, self.lines = code, lines


@dataclass(frozen=True)
class Decision:
    """What a line holds after a command: what `server.holds[lineId]` shows."""

    status: str  # held, partial, unavailable, released, expired
    qty: int
    expires_at: int | None = None  # ms

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "qty": self.qty, "expiresAt": self.expires_at}


@dataclass(frozen=True)
class Level:
    on_hand: int
    held: int

    @property
    def available(self) -> int:
        return self.on_hand - self.held

    def to_json(self) -> dict[str, int]:
        return {"onHand": self.on_hand, "held": self.held, "available": self.available}


HoldKey = tuple[str, str]  # (cartId, lineId)
Want = tuple[str, int]  # what a line asks of stock: (sku, qty)
HoldListener = Callable[[str, dict[str, Decision]], Awaitable[None]]
LevelListener = Callable[[dict[str, int]], None]


class StockAuthority(Protocol):
    """The one decider of stock. Embedded: `StockActor`; scale-out: `RedisStock` (Lua scripts).

    Listeners: `level_listeners` hear `{sku: available}` after each committed change;
    `hold_listeners` hear `(cartId, {lineId: Decision})` when holds expire.
    """

    hold_listeners: list[HoldListener]
    level_listeners: list[LevelListener]

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def levels(self, skus: Iterable[str]) -> dict[str, Level]: ...
    async def holds_of(self, cart_id: str) -> dict[str, HoldRow]: ...
    async def reserve(self, cart_id: str, line_id: str, sku: str, qty: int) -> Decision: ...
    async def release(self, cart_id: str, line_id: str) -> Decision: ...
    def reserve_now(self, cart_id: str, wants: dict[str, Want | None]) -> dict[str, Decision] | None:
        """Decides these lines' holds at once (a want of None releases), or returns None when
        this authority can only decide asynchronously (`reserve`/`release` then)."""
    async def release_cart(self, cart_id: str) -> None: ...
    async def sell(self, cart_id: str, wants: dict[str, Want], until_ms: int) -> dict[str, int]:
        """Sells what each line wants, all or nothing, and says how many units each line sold.

        A line's hold is what it sells, topped up from available stock when the hold ran out or
        fell short (a hold of another SKU goes back first); a line sold before counts as sold,
        once (a payment report repeated after a crash). Each sale is recorded with the units it
        takes off on-hand, in the same step. If a line cannot be covered, nothing is sold: the
        lines that can be are left held until at least `until_ms`, the others as they were, and
        StockError("out_of_stock") names them."""
    async def set_on_hand(self, sku: str, on_hand: int) -> Level: ...
    async def adjust(self, sku: str, delta: int) -> Level: ...
    async def transfer(self, src: HoldKey, dst: HoldKey, keep: int) -> Decision: ...
    async def expire_due(self) -> None: ...
    async def extend(self, cart_id: str, until_ms: int) -> None:
        """Keeps every hold of the cart at least until `until_ms` (the payment window)."""


def open_stock(config: Config, store: Store) -> StockAuthority:
    """The embedded actor keeps its decisions in the SQLite store; with Redis, Redis decides."""
    if is_embedded(config.store):
        from .actor import StockActor

        return StockActor(cast(StockLog, store), config.hold_ttl_seconds)
    from .redis import RedisStock
    from .redis_cluster import RedisClusterStock

    cls = RedisClusterStock if config.store.startswith("redis+cluster://") else RedisStock
    return cls(config.store, config.hold_ttl_seconds)
