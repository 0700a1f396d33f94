"""Order mail: paid, dispatched (with the carrier's link), delivered and cancelled, each linking the tracking page."""
from __future__ import annotations

import logging
from typing import Any

from ..catalog import CatalogCache
from ..clock import now_ms
from ..config import Config
from ..store.index import ShopIndex
from .compose import message_id, render, valid_email
from .tokens import tracking_token

log = logging.getLogger("livecart.mail")

# order status -> (mail kind, subject, headline)
MAILS: dict[str, tuple[str, str, str]] = {
    "confirmed": ("paid", "Your order {id} is confirmed",
                  "Thank you: your payment arrived and we are getting your order ready."),
    "dispatched": ("dispatched", "Your order {id} is on its way", "Your order has left us."),
    "delivered": ("delivered", "Your order {id} was delivered", "Your order was delivered. Enjoy it!"),
    "cancelled": ("cancelled", "Your order {id} was cancelled",
                  "Your order was cancelled; anything you paid is refunded."),
}


def status_of(order: dict[str, Any]) -> str:
    """The order's status (`status` in the records of issue 18, `state` before them)."""
    return str(order.get("status") or order.get("state") or "")


def id_of(order: dict[str, Any]) -> str:
    return str(order.get("orderId") or order.get("id") or "")


def money(amount: Any, currency: str) -> str:
    if not isinstance(amount, int):
        return ""
    return f"{amount / 100:,.2f} {currency}".strip()


async def contact(index: ShopIndex, order: dict[str, Any]) -> tuple[str, str]:
    """(email, name) to write to about an order: its checkout details when they have an email,
    else the customer's profile (the customer index keeps it)."""
    details = order.get("details") or {}
    if valid_email(details.get("email")):
        return details["email"], str(details.get("name") or "")
    profile = await index.get_customer(str(order.get("customerId", ""))) or {}
    if valid_email(profile.get("email")):
        return profile["email"], str(profile.get("name") or details.get("name") or "")
    return "", ""


def product_name(catalog: CatalogCache, line: dict[str, Any]) -> str:
    product = catalog.get(str(line.get("sku", "")))
    return str(line.get("name") or (product.name if product is not None else line.get("sku", "")))


def public_url(config: Config) -> str:
    """The base of links in mail."""
    return (config.public_url or f"http://{config.host}:{config.port}").rstrip("/")


def tracking_url(config: Config, order_id: str) -> str:
    return f"{public_url(config)}/orders/{order_id}?t={tracking_token(config.jwt_secret, order_id)}"


def compose(config: Config, catalog: CatalogCache, order: dict[str, Any], email: str,
            name: str) -> tuple[str, dict[str, Any]]:
    """The job id and the whole mail for the order's current status."""
    order_id, status = id_of(order), status_of(order)
    kind, subject, headline = MAILS[status]
    job_id = f"order-{order_id}-{kind}"
    currency = str(order.get("currency") or "")
    tracking = order.get("tracking") if kind == "dispatched" else None
    subject = subject.format(id=order_id)
    context = {"name": name, "headline": headline, "order_id": order_id, "subject": subject,
               "lines": [{"sku": line.get("sku", ""), "name": product_name(catalog, line), "qty": line.get("qty", 0),
                          "total": money(line.get("total"), currency)} for line in order.get("lines", [])],
               "total": money(order.get("total"), currency), "tracking": tracking,
               "page_url": tracking_url(config, order_id), "shop": "livecart"}
    text, html = render("order", **context)
    mail_from = config.mail_from
    return job_id, {"to": f"{name} <{email}>" if name else email, "subject": subject, "text": text, "html": html,
                    "messageId": message_id(job_id, mail_from), "date": now_ms(),
                    "headers": {"X-Livecart-Order": order_id}}
