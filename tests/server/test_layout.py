"""The layout a newcomer relies on: services know nothing of aiohttp's web layer, and nothing below the
routes reaches for the app's AppKey (services are given what they use)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"
SERVICES = ("access", "auth", "browsing", "carts", "catalog", "clock", "customers", "demo_people", "discounts",
            "feeds", "hooks", "ids", "invites", "kiosks", "merging", "open_carts", "order_records", "orders", "profiles",
            "refusals", "shop_floor", "webhooks", "outbox", "mail/service", "mail/orders", "mail/mailings",
            "mail/segments", "mail/compose", "mail/smtp", "mail/tokens", "mail/catcher")


def imported(module: str) -> set[str]:
    tree = ast.parse((SERVER / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.update(f"{'.' * node.level}{node.module or ''}.{alias.name}".lstrip(".") for alias in node.names)
            names.add(f"{'.' * node.level}{node.module or ''}")
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("module", SERVICES)
def test_a_service_knows_nothing_of_the_web_layer(module: str) -> None:
    names = imported(module)
    assert not {n for n in names if n in ("aiohttp.web", "aiohttp.web_request") or n.startswith("aiohttp.web.")}, names
    assert not {n for n in names if n.lstrip(".").split(".")[0] in ("services", "guard", "routes", "openapi", "errors")}, names
