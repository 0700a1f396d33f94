"""Who may open which cart: the role table of DESIGN.md, backed by grants kept in the store."""
from __future__ import annotations

from .auth import Identity
from .store import CartRecord, Store

LOOKUP_TTL = 8 * 3600  # an operator's lookup of a customer lasts a working day


def grant_key(who: Identity, cart_id: str) -> str:
    return f"{who.sub}|{cart_id}"


async def grant_cart(store: Store, who: Identity, cart_id: str) -> None:
    """An assistant joins a cart (invited by code, or a walk-in cart it created)."""
    await store.put_record("grant", grant_key(who, cart_id), {"role": who.role})


async def record_lookup(store: Store, who: Identity, customer_id: str) -> None:
    """An operator looked a customer up: it may now open that customer's carts."""
    if who.role == "operator":
        await store.put_record("lookup", f"{who.sub}|{customer_id}", {}, ttl=LOOKUP_TTL)


async def kiosk_cart(store: Store, kiosk_id: str) -> str | None:
    session = await store.get_record("kiosk", kiosk_id)
    return session["cartId"] if session else None


async def may_open(store: Store, who: Identity, cart: CartRecord) -> bool:
    if who.role == "admin":
        return True
    if who.role == "customer":
        return cart.owner == who.sub
    if who.role == "assistant":
        return await store.get_record("grant", grant_key(who, cart.id)) is not None
    if who.role == "operator":
        return await store.get_record("lookup", f"{who.sub}|{cart.owner}") is not None
    if who.role == "kiosk":
        return await kiosk_cart(store, who.sub) == cart.id
    return False


async def may_see_customer(store: Store, who: Identity, customer_id: str) -> bool:
    """Profile, favourites and orders: the customer, operators, admins, and an assistant
    that has access to one of the customer's carts."""
    if who.role in ("admin", "operator") or (who.role == "customer" and who.sub == customer_id):
        return True
    if who.role == "assistant":
        carts = await store.list_carts(customer_id)
        grants = await store.list_records("grant", f"{who.sub}|")
        return any(grant_key(who, c.id) in grants for c in carts)
    return False


async def may_see_order(store: Store, who: Identity, order: dict) -> bool:
    """An order: its customer, an admin, and whoever may open the cart it was bought from (an operator
    who looked the customer up, an assistant or a kiosk with access to that very cart)."""
    if who.role in ("admin", "customer"):
        return who.is_admin or order["customerId"] == who.sub
    record = await store.get_cart(order["cartId"])
    return record is not None and await may_open(store, who, record)
