"""Checkout and orders: the checkout step kept across visits, server re-pricing, the order, payment that
sells what is held, and the order's workflow (confirmed, dispatched, delivered, cancelled)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ..crdt import server_root
from ..crdt.cart import plain
from ..crdt.details import clean_details, missing_details
from . import order_records, profiles
from .auth import Identity
from .bus import Bus
from .catalog import CatalogCache
from .clock import now_ms
from .config import Config
from .discounts import DiscountBook
from .feeds import customer_event, shop_event
from .ids import new_id
from .refusals import Conflict, Invalid, NotFound, exclusive
from .sync.registry import Rooms
from .sync.room import Room
from .stock import StockAuthority, StockError
from .store import CartRecord, HoldRow, Store
from .store.index import ShopIndex
from .webhooks import Webhooks

STEPS = ("personalise", "details", "payment")
# order state -> the states an admin may move it to
TRANSITIONS = {"confirmed": {"dispatched", "cancelled"}, "dispatched": {"delivered"},
               "awaiting_payment": {"cancelled"}}
Order = dict[str, Any]


@dataclass(frozen=True)
class CheckedOut:
    """What a checkout decided: the order (made now, or the one the cart was already checking out with)."""

    order_id: str
    state: str
    total: int
    created: bool  # False: the cart had checked out already, and this is the same order

    def to_json(self) -> dict[str, Any]:
        return {"orderId": self.order_id, "state": self.state, "total": self.total}


def problems(room: Room, catalog: Any, held: dict[str, HoldRow]) -> list[dict[str, str]]:
    """Why a cart cannot be bought now, line by line (empty: it can). `held`: what the stock
    authority holds for the cart, the only truth about holds (the doc may lag behind it)."""
    out = []
    with room.cart.doc.transaction():
        holds = plain(room.cart.server.get("holds") or {})
        for line_id, line in room.cart.lines.items():
            data = plain(line)
            hold = held.get(line_id)
            if hold is None or hold.sku != data.get("sku") or hold.qty != data.get("qty"):
                state = (holds.get(line_id) or {}).get("status", "not yet decided")
                out.append({"lineId": line_id, "sku": data.get("sku"),
                            "problem": f"only {hold.qty if hold else 0} of {data.get('qty')} held ({state})"})
            product = catalog(str(data.get("sku")))
            for field, spec in (product.personalisation.items() if product else ()):
                value = (data.get("personalisation") or {}).get(field)
                if spec.required and not (value.strip() if isinstance(value, str) else value):
                    out.append({"lineId": line_id, "sku": data.get("sku"),
                                "problem": f"personalisation {field!r} is required"})
    return out


def order_lines(room: Room, pricing: dict[str, Any]) -> list[dict[str, Any]]:
    with room.cart.doc.transaction():
        return [{"lineId": line_id, **pricing["lines"][line_id],
                 "personalisation": plain(line).get("personalisation")}
                for line_id, line in room.cart.lines.items() if line_id in pricing["lines"]]


def _units(order: Order) -> dict[str, int]:
    sold = (order.get("payment") or {}).get("sold") or {}
    units: dict[str, int] = {}
    for line in order["lines"]:
        units[line["sku"]] = units.get(line["sku"], 0) + int(sold.get(line["lineId"], line["qty"]))
    return units


class Orders:
    """Checkout, payment and the order workflow; each order's changes are one at a time in any process."""

    def __init__(self, config: Config, store: Store, stock: StockAuthority, rooms: Rooms, catalog: CatalogCache,
                 discounts: DiscountBook, bus: Bus, webhooks: Webhooks, index: ShopIndex) -> None:
        self.config, self.store, self.stock, self.rooms = config, store, stock, rooms
        self.catalog, self.discounts, self.bus, self.webhooks = catalog, discounts, bus, webhooks
        self.index = index  # orders listed and customers found (server/store/index.py)
        self.listeners: list[Callable[[Order], Awaitable[Any]]] = []  # told of each change (order mail)

    def category_of(self, sku: str) -> str | None:
        return getattr(self.catalog.get(sku), "category", None)

    async def get(self, order_id: str) -> Order:
        order = await self.store.get_record("order", order_id)
        if order is None:
            raise NotFound("no_order", "no such order")
        return order

    # -- checkout -------------------------------------------------------------------------------

    async def step(self, who: Identity, record: CartRecord, step: str) -> None:
        """Records the checkout step a shopper reached (kept across visits and devices)."""
        room = await self.rooms.get(record.id)
        if room.cart.status != "open":
            raise Conflict("not_open", f"cart is {room.cart.status}")
        missing = missing_details(plain(room.cart.meta.get("details") or {})) if step == "payment" else []
        if missing:
            raise Conflict("details_incomplete", "checkout details missing or invalid: " + ", ".join(missing))
        at = now_ms()
        await room.commit(server_root.checkout_step(room.cart, step, at))
        shop_event(self.bus, "checkout.step", cartId=record.id, step=step, who=who.sub, role=who.role)

    async def checkout(self, who: Identity, record: CartRecord) -> CheckedOut:
        """Re-prices the cart on the server, freezes it and makes the order (once: checking out twice
        answers with the same order)."""
        room = await self.rooms.get(record.id)
        async with exclusive(self.store, f"cart:{record.id}"):  # one checkout of a cart at once, in any process
            return await self._existing_order(room) or await self._checkout(who, record, room)

    async def _checkout(self, who: Identity, record: CartRecord, room: Room) -> CheckedOut:
        store, stock = self.store, self.stock
        if room.cart.status != "open":
            raise Conflict("not_open", f"cart is {room.cart.status}")
        if not len(room.cart.lines):
            raise Conflict("empty_cart", "the cart has no lines")
        now = now_ms()
        # The payment window first, then what is held: nothing read below runs out before payment.
        await stock.extend(record.id, now + int(self.config.hold_ttl_seconds * 1000))
        held = await stock.holds_of(record.id)
        await room.holds.show(held)  # the doc says what the authority holds, so the price follows it
        found = problems(room, self.catalog.get, held)
        if found:
            raise Conflict("not_ready", "; ".join(f"line {p['lineId']} ({p['sku']}): {p['problem']}" for p in found))
        conflicts = server_root.conflicts_of(room.cart, self.catalog.get, room.groups())
        if conflicts:
            raise Conflict("not_combinable", "; ".join(c["message"] for c in conflicts))
        pricing = server_root.compute_pricing(room.cart, self.catalog.get, self.discounts.get)
        order_id = new_id("o-")
        order = order_records.new_order(order_id, record.id, record.owner, order_lines(room, pricing), pricing,
                                        clean_details(plain(room.cart.meta.get("details") or {})), now, who.sub)
        await order_records.save(store, self.index, order)
        await store.put_record("customer-order", f"{record.owner}|{now:013d}|{order_id}", {"orderId": order_id})
        await room.commit(server_root.freeze(room.cart, order_id, pricing, now))
        await self._order_event(order, "order.created")
        return CheckedOut(order_id, "awaiting_payment", pricing["total"], created=True)

    async def _existing_order(self, room: Room) -> CheckedOut | None:
        """A cart already checking out answers with its order: checking out twice makes one order."""
        order_id = (plain(room.cart.server.get("checkout") or {})).get("orderId")
        if room.cart.status == "checking_out" and order_id:
            order = await self.store.get_record("order", order_id)
            if order:
                return CheckedOut(order_id, order["state"], order["total"], created=False)
        return None

    async def _order_event(self, order: Order, type_: str) -> None:
        """Live to the customer and the shop floor, and (persisted first) to the host platform."""
        customer_event(self.bus, order["customerId"], type_, orderId=order["id"], cartId=order["cartId"],
                       state=order["state"], status=order_records.status_of(order), total=order["total"],
                       createdAt=order["createdAt"], **({"tracking": order["tracking"]} if order.get("tracking") else {}))
        await self.webhooks.emit(type_, {"order": order})
        for listener in self.listeners:
            await listener(order)

    # -- payment and the order workflow ---------------------------------------------------------

    async def _move(self, order: Order, state: str, who: str, **extra: Any) -> Order:
        order = order_records.moved(order, state, who, now_ms(), **extra)
        await order_records.save(self.store, self.index, order)
        await self._order_event(order, "order.status")
        return order

    async def payment(self, who: Identity, order_id: str, status: str, reference: Any) -> Order:
        """The platform reports a payment, `paid` or `failed` (idempotent); returns the order."""
        async with exclusive(self.store, f"order:{order_id}"):
            return await self._payment(who, await self.get(order_id), status, reference)

    async def _payment(self, who: Identity, order: Order, status: str, reference: Any) -> Order:
        outcome = {"paid": "confirmed", "failed": "payment_failed"}[status]
        if order["state"] != "awaiting_payment":
            if order["state"] == outcome:  # the same report twice changes nothing, but a crash may have
                await self._show_outcome(order, status)  # cut the first short before the cart showed it
                return order
            if status == "paid" and order["state"] in ("dispatched", "delivered"):
                return order
            raise Conflict("bad_transition", f"order is {order['state']}; payment {status} does not apply")
        if status == "paid":
            sold = await self._sell(await self.rooms.get(order["cartId"]), order)
            order = await self._move(order, "confirmed", who.sub, payment={"reference": reference, "sold": sold})
            await profiles.record_paid(self.index, order, self.category_of)  # its customer is found by it now
        else:
            order = await self._move(order, "payment_failed", who.sub, payment={"reference": reference})
        await self._show_outcome(order, status)
        return order

    async def _show_outcome(self, order: Order, status: str) -> None:
        """The cart of an order whose payment was reported: ordered (its lines sold), or open again
        with its holds. Only while the cart still waits for this order's payment."""
        room = await self.rooms.get(order["cartId"])
        checkout = plain(room.cart.server.get("checkout") or {})
        if room.cart.status != "checking_out" or checkout.get("orderId") != order["id"]:
            return
        paid = status == "paid"
        if paid:
            await self.store.put_record("cart-closed", order["cartId"], {"status": "ordered", "orderId": order["id"]})
        else:
            room.holds.want(set(room.cart.lines.keys()))  # the holds stay; their clocks start again on edits
        sold = [(line["lineId"], line["qty"]) for line in order["lines"]] if paid else None
        await room.commit(server_root.payment_outcome(room.cart, order["state"], sold))

    async def _sell(self, room: Room, order: Order) -> dict[str, int]:
        """Sells the order's lines in the stock authority, never from what the cart doc shows: a hold
        that ran out is taken again from available stock in the same step. Without enough stock
        nothing is sold, the order stays `awaiting_payment` (409 `out_of_stock`) and the cart shows
        what is still held: the platform refunds (payment `failed` reopens the cart) or reports `paid`
        again once restocked."""
        stock, cart_id = self.stock, order["cartId"]
        wants = {line["lineId"]: (line["sku"], line["qty"]) for line in order["lines"] if line["qty"] > 0}
        window = now_ms() + int(self.config.hold_ttl_seconds * 1000)
        try:
            return await stock.sell(cart_id, wants, window)
        except StockError as exc:
            if exc.code != "out_of_stock":
                raise
            await room.holds.show(await stock.holds_of(cart_id))
            lines = ", ".join(f"{line} ({wants[line][0]})" for line in exc.lines)
            raise Conflict("out_of_stock", f"no longer held and not in stock: {lines}; nothing was sold and the "
                           "order is still awaiting_payment (report failed to refund, or paid again once restocked)"
                           ) from None

    async def move(self, who: Identity, order_id: str, target: Any, tracking: Any = None) -> Order:
        """An admin moves an order on (dispatched, delivered, cancelled; `tracking` only with
        dispatched); returns the order."""
        extra = {}
        if tracking is not None:
            if target != "dispatched":
                raise Invalid("bad_tracking", "tracking goes with dispatched")
            extra["tracking"] = order_records.tracking(tracking)
        async with exclusive(self.store, f"order:{order_id}"):
            order = await self.get(order_id)
            if target not in TRANSITIONS.get(order["state"], set()):
                raise Conflict("bad_transition", f"an order that is {order['state']} cannot become {target}")
            if target == "cancelled":
                await self._cancel(order)
            moved = await self._move(order, target, who.sub, **extra)
            if target == "cancelled" and order["state"] == "confirmed":
                await profiles.record_cancelled(self.index, moved, self.category_of)
            return moved

    async def _cancel(self, order: Order) -> None:
        """Cancelled before dispatch: what was sold goes back on the shelf, or the holds are let go."""
        stock = self.stock
        if order["state"] == "confirmed":
            for sku, qty in _units(order).items():
                await stock.adjust(sku, qty)
        else:
            await stock.release_cart(order["cartId"])
        room = await self.rooms.get(order["cartId"])
        await room.commit(server_root.close(room.cart))
        await self.store.put_record("cart-closed", order["cartId"], {"status": "closed", "orderId": order["id"]})
