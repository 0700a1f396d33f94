"""Signed links in mail: the order tracking token and the unsubscribe token (HMAC with the server secret)."""
from __future__ import annotations

import base64
import hashlib
import hmac


def _mac(secret: str, purpose: str, value: str) -> str:
    digest = hmac.new(secret.encode(), f"{purpose}|{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()  # 144 bits, 24 characters, URL-safe


def tracking_token(secret: str, order_id: str) -> str:
    """`t` of `/orders/{orderId}?t=…`: good for that order alone."""
    return _mac(secret, "order-tracking", order_id)


def tracking_ok(secret: str, order_id: str, token: str) -> bool:
    return hmac.compare_digest(tracking_token(secret, order_id).encode(), (token or "").encode())


def unsubscribe_token(secret: str, customer_id: str) -> str:
    """`t` of `/unsubscribe?t=…`: names the customer and proves the link came from us."""
    who = base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")
    return f"{who}.{_mac(secret, 'unsubscribe', customer_id)}"


def unsubscriber(secret: str, token: str) -> str | None:
    """The customer an unsubscribe token is for, or None when it is not one of ours."""
    who, _, mac = (token or "").partition(".")
    try:
        customer_id = base64.urlsafe_b64decode(who + "=" * (-len(who) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not customer_id or not hmac.compare_digest(_mac(secret, "unsubscribe", customer_id), mac):
        return None
    return customer_id
