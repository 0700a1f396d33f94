"""The cart document schema of DESIGN.md: root names, line and meta fields, catalog facts, limits."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

ROOTS = frozenset({"lines", "meta", "server", "chat"})
CLIENT_ROOTS = frozenset({"lines", "meta", "chat"})
MAP_ROOTS = frozenset({"lines", "meta", "server"})  # `chat` is a Y.Array
LINE_FIELDS = frozenset({"sku", "qty", "addedBy", "channel", "addedAt", "personalisation"})
META_FIELDS = frozenset({"note", "discountCodes", "details"})
LINE_STATUSES = ("held", "partial", "unavailable", "expired", "released")
CART_STATUSES = ("open", "checking_out", "ordered", "merged", "closed")


@dataclass(frozen=True)
class FieldSpec:
    """One personalisation field of a product: free text or a list of entries."""

    kind: Literal["text", "list"] = "text"
    max_length: int = 500  # characters of the text, or of each list entry
    max_items: int = 200  # list entries
    required: bool = False


@dataclass(frozen=True)
class Product:
    """What validation and pricing need to know about a SKU."""

    sku: str
    name: str = ""
    price: int = 0  # minor units
    currency: str = "EUR"
    max_qty: int = 99
    personalisation: dict[str, FieldSpec] = field(default_factory=dict)
    checkout_group: str = "general"  # which products may share one checkout (DESIGN.md, checkout groups)
    category: str = ""  # the catalog's grouping (customers are found by a category bought)


Catalog = Callable[[str], "Product | None"]


@dataclass(frozen=True)
class Limits:
    """Bounds a client update must keep the document within."""

    max_lines: int = 100
    max_doc_bytes: int = 256 * 1024
    max_qty: int = 99  # when the catalog names no maxQty
    max_string_chars: int = 200  # sku, addedBy, channel
    max_note_chars: int = 2000
    max_discount_codes: int = 20
    max_code_chars: int = 64
    max_chat_chars: int = 2000  # one chat message's text


# Numbers a cart may carry: exact as JavaScript numbers (Yjs clients read them as such), and
# money sums that cannot overflow: MAX_PRICE × MAX_QTY × MAX_LINES = MAX_AMOUNT < MAX_SAFE_INTEGER.
MAX_SAFE_INTEGER = 2**53 - 1  # Number.MAX_SAFE_INTEGER
MAX_PRICE = 10**8  # a unit price in minor units: 1,000,000.00 in a two-decimal currency
MAX_QTY = 10_000  # a product's maxQty
MAX_LINES = 1_000  # the most --max-lines may allow
MAX_AMOUNT = MAX_PRICE * MAX_QTY * MAX_LINES  # 10^15: no cart totals more (an amountOff's bound)
MAX_STOCK = 10**12  # units on hand of one SKU, and of one adjustment
MAX_TEXT = 100_000  # a personalisation field's maxLength (characters)
MAX_ITEMS = 10_000  # a personalisation list's maxItems
