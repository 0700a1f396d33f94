"""The test harness: a real livecart app on a loopback port with its own data dir, and its fixtures."""
from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web



from livecart.server import auth  # noqa: E402
from livecart.server.app import create_app  # noqa: E402
from livecart.server.config import Config  # noqa: E402
from yclient import YClient  # noqa: E402

SECRET = "test-secret-" + "x" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Livecart:
    """A running server plus the calls tests make against it."""

    config: Config
    session: aiohttp.ClientSession
    runner: web.AppRunner | None = None
    clients: list[YClient] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    @property
    def app(self) -> web.Application:
        assert self.runner is not None
        return self.runner.app

    async def start(self) -> "Livecart":
        self.runner = web.AppRunner(create_app(self.config))
        await self.runner.setup()
        await web.TCPSite(self.runner, self.config.host, self.config.port).start()
        return self

    async def stop(self) -> None:
        for client in self.clients:
            if client.ws is not None and not client.ws.closed:
                await client.close()
        self.clients.clear()
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await asyncio.wait_for(runner.cleanup(), timeout=30)  # a stuck shutdown fails the test

    def token(self, sub: str, role: str = "customer", **kw: Any) -> str:
        return auth.mint(self.config.jwt_secret, sub, role, **kw)

    async def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.base + path, headers=headers, **kw) as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, body

    async def product(self, sku: str, **fields: Any) -> None:
        body = {"name": sku.title(), "price": 1000, **fields}
        status, data = await self.call("PUT", f"/api/catalog/{sku}", self.token("root", "admin"), json=body)
        assert status == 200, data

    async def cart(self, owner: str = "alice", channel: str = "web") -> str:
        status, data = await self.call("POST", "/api/carts", self.token(owner), json={"channel": channel})
        assert status == 201, data
        return data["cartId"]

    def ws_url(self, cart_id: str, token: str | None) -> str:
        query = f"?token={token}" if token is not None else ""
        return f"ws://{self.config.host}:{self.config.port}/ws/carts/{cart_id}{query}"

    async def client(self, cart_id: str, token: str | None = None, sync: bool = True) -> YClient:
        client = await YClient(self.session, self.ws_url(cart_id, token or self.token("alice"))).connect()
        self.clients.append(client)
        if sync:
            await client.wait_synced()
        return client


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    return Config(host="127.0.0.1", port=free_port(), data_dir=tmp_path / "data",
                  jwt_secret=SECRET, room_grace_seconds=0.2, **overrides)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def lc(tmp_path: Path, session: aiohttp.ClientSession) -> AsyncIterator[Livecart]:
    server = await Livecart(make_config(tmp_path), session).start()
    await server.product("MUG", maxQty=5)
    await server.product("TEE")
    yield server
    await server.stop()
