"""Checkout details in `meta.details`: the fields clients may write, their bounds, and what payment needs."""
from __future__ import annotations

import re
from typing import Any

from pycrdt import Map

# field -> most characters. Strings only; an empty string is a field being cleared as someone types.
DETAIL_FIELDS: dict[str, int] = {"name": 200, "email": 254, "phone": 32, "delivery": 7, "store": 100}
ADDRESS_FIELDS: dict[str, int] = {"line1": 200, "line2": 200, "city": 100, "postcode": 20, "country": 56}
DELIVERY = ("ship", "collect")
REQUIRED_ADDRESS = ("line1", "city", "postcode", "country")
# Deliberately loose (RFC 5322 is not what shoppers type): something@host.tld, no spaces. The OpenAPI
# document carries the same pattern, so the spaces are named: Python's \s and ECMA's differ by these.
_NO = r"@\s\u001c-\u001f\u0085\ufeff"
EMAIL = re.compile(rf"^[^{_NO}]+@[^{_NO}.]+(\.[^{_NO}.]+)+$")


def check_details(value: Any) -> str | None:
    """The rule `meta.details` (a Y.Map) breaks, or None. Only the named keys, strings within bounds,
    `delivery` one of ship/collect (or empty), `address` a Y.Map of its own named string keys."""
    if not isinstance(value, Map):
        return "meta: details must be a map"
    for key in value.keys():
        field = value.get(key)
        if key == "address":
            reason = _check_address(field)
        elif key in DETAIL_FIELDS:
            reason = _check_string(f"details.{key}", field, DETAIL_FIELDS[key])
            if reason is None and key == "delivery" and field not in ("", *DELIVERY):
                reason = "meta: details.delivery is ship or collect"
        else:
            reason = f"meta: details has no field {key!r} (allowed: {', '.join([*DETAIL_FIELDS, 'address'])})"
        if reason:
            return reason
    return None


def _check_address(value: Any) -> str | None:
    if not isinstance(value, Map):
        return "meta: details.address must be a map"
    for key in value.keys():
        if key not in ADDRESS_FIELDS:
            return f"meta: details.address has no field {key!r} (allowed: {', '.join(ADDRESS_FIELDS)})"
        reason = _check_string(f"details.address.{key}", value.get(key), ADDRESS_FIELDS[key])
        if reason:
            return reason
    return None


def _check_string(where: str, value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return f"meta: {where} must be a string"
    if len(value) > limit:
        return f"meta: {where} is over {limit} characters"
    return None


def missing_details(details: dict[str, Any]) -> list[str]:
    """What the `details` -> `payment` step still lacks (field paths; empty: nothing)."""
    def filled(value: Any) -> bool:
        return isinstance(value, str) and bool(value.strip())

    missing = [] if filled(details.get("name")) else ["name"]
    email = details.get("email")
    if not (isinstance(email, str) and EMAIL.match(email.strip())):
        missing.append("email")
    delivery = details.get("delivery")
    if delivery == "ship":
        address = details.get("address") if isinstance(details.get("address"), dict) else {}
        missing += [f"address.{f}" for f in REQUIRED_ADDRESS if not filled(address.get(f))]
    elif delivery == "collect":
        if not filled(details.get("store")):
            missing.append("store")
    else:
        missing.append("delivery")
    return missing


def clean_details(details: Any) -> dict[str, Any]:
    """The details as an order keeps them: trimmed strings, the address only when shipping,
    the store only when collecting."""
    if not isinstance(details, dict):
        return {}
    out = {k: details[k].strip() for k in ("name", "email", "phone", "delivery")
           if isinstance(details.get(k), str) and details[k].strip()}
    if out.get("delivery") == "ship" and isinstance(details.get("address"), dict):
        out["address"] = {k: v.strip() for k, v in details["address"].items() if isinstance(v, str) and v.strip()}
    if out.get("delivery") == "collect" and isinstance(details.get("store"), str):
        out["store"] = details["store"].strip()
    return out
