"""The layout a newcomer relies on: services know nothing of aiohttp's web layer, and nothing below the
routes reaches for the app's AppKey (services are given what they use)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"
# The web layer: the app, its routes and sockets, and what they share. Every other module of server/ is
# a service or a backend below it, found by walking the tree, so a new one is checked without being listed.
WEB_LAYER = {"app", "cli", "errors", "guard", "logs", "openapi", "pages", "services", "sockets",
             "sync/connection", "sync/socket"}
SERVICES = tuple(sorted(
    name for path in SERVER.rglob("*.py")
    if "static" not in path.parts
    and (name := path.relative_to(SERVER).with_suffix("").as_posix()) not in WEB_LAYER
    and not name.startswith("routes/") and name != "__init__"))


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
