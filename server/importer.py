"""`livecart import`: a catalog and stock file (CSV or JSON Lines), checked whole, applied in one transaction."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..crdt import Product
from ..crdt.schema import MAX_STOCK
from .catalog import product_from_json, product_to_json
from .refusals import Invalid

FIELDS = ("sku", "name", "price", "currency", "maxQty", "onHand", "personalisation")


@dataclass
class BadRow(Exception):
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class Row:
    product: Product
    on_hand: int | None


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, raw fields) per row; the format comes from the file's suffix."""
    with path.open(newline="", encoding="utf-8") as f:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            for number, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise BadRow(number, f"not JSON: {exc.msg}") from None
                if not isinstance(data, dict):
                    raise BadRow(number, "each line must be a JSON object")
                yield number, data
        elif path.suffix.lower() == ".csv":
            reader = csv.DictReader(f)
            unknown = set(reader.fieldnames or ()) - set(FIELDS)
            if unknown:
                raise BadRow(1, f"unknown column {sorted(unknown)[0]!r} (columns: {', '.join(FIELDS)})")
            for data in reader:
                yield reader.line_num, _typed_csv(reader.line_num, data)
        else:
            raise BadRow(0, "the file must end in .csv, .jsonl or .ndjson")


def _typed_csv(number: int, data: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in data.items() if v not in (None, "")}
    for key in ("price", "maxQty", "onHand"):
        if key in out:
            try:
                out[key] = int(out[key])
            except ValueError:
                raise BadRow(number, f"{key} must be a whole number, got {out[key]!r}") from None
    if "personalisation" in out:
        try:
            out["personalisation"] = json.loads(out["personalisation"])
        except json.JSONDecodeError:
            raise BadRow(number, "personalisation must be a JSON object") from None
    return out


def parse_row(number: int, data: dict[str, Any]) -> Row:
    sku = data.get("sku")
    if not isinstance(sku, str) or not sku or len(sku) > 64:
        raise BadRow(number, "sku must be a string of 1..64 characters")
    try:
        product = product_from_json(sku, data)
    except Invalid as exc:
        raise BadRow(number, exc.message) from None
    on_hand = data.get("onHand")
    if on_hand is not None and (not isinstance(on_hand, int) or isinstance(on_hand, bool) or not 0 <= on_hand <= MAX_STOCK):
        raise BadRow(number, f"onHand must be a whole number in 0..{MAX_STOCK}")
    return Row(product, on_hand)


def to_store(rows: list[Row]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    products = {r.product.sku: product_to_json(r.product) for r in rows}
    on_hand = {r.product.sku: r.on_hand for r in rows if r.on_hand is not None}
    return products, on_hand
