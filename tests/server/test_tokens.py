"""Identity providers: tokens signed by a PEM key or a JWKS served on loopback, keys made in the test."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import jwt
import pytest
from aiohttp import web
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from harness import Livecart, free_port, make_config
from livecart.server.cli import main

ISSUER, AUDIENCE = "https://idp.example/", "livecart"


def private_key(alg: str) -> Any:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def pem(key: Any) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def jwk(key: Any, kid: str) -> dict[str, Any]:
    """The public half of `key` as a JWKS entry."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        entry = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        entry = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        entry = jwt.algorithms.OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**entry, "kid": kid, "use": "sig"}


def provider_token(key: Any, alg: str, sub: str = "pat", role: Any = "customer", kid: str | None = None,
                   **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **claims}
    if role is not None:
        payload["role"] = role
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to make: `alg: none`, or HS256 keyed with a public key's PEM."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def create_cart(lc: Livecart, token: str) -> tuple[int, Any]:
    return await lc.call("POST", "/api/carts", token, json={"channel": "web"})


@pytest.fixture
async def pem_server(tmp_path: Path, session: aiohttp.ClientSession) -> AsyncIterator[tuple[Livecart, Any]]:
    key = private_key("RS256")
    lc = await Livecart(make_config(tmp_path, jwt_public_key=pem(key), jwt_issuer=ISSUER, jwt_audience=AUDIENCE),
                        session).start()
    yield lc, key
    await lc.stop()


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_a_providers_token_signed_with_its_pem_key_is_accepted(alg: str, tmp_path: Path, session) -> None:
    key = private_key(alg)
    lc = await Livecart(make_config(tmp_path, jwt_public_key=pem(key)), session).start()
    try:
        status, body = await create_cart(lc, provider_token(key, alg))
        assert status == 201 and body["owner"] == "pat"
        client = await lc.client(body["cartId"], provider_token(key, alg))  # the socket takes it too
        assert client.ws is not None and not client.ws.closed
        # the server's own HS256 tokens still work beside the provider's
        assert (await create_cart(lc, lc.token("alice")))[0] == 201
    finally:
        await lc.stop()


async def test_forged_and_misaddressed_tokens_are_refused_on_http_and_sockets(pem_server) -> None:
    lc, key = pem_server
    public_pem = pem(key).encode()
    now = int(time.time())
    claims = {"sub": "eve", "role": "admin", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600}
    other = private_key("RS256")
    forged = {
        "alg none": hand_signed({"alg": "none", "typ": "JWT"}, claims, None),
        "HS256 keyed with the public key": hand_signed({"alg": "HS256", "typ": "JWT"}, claims, public_pem),
        "another key": provider_token(other, "RS256", role="admin"),
        "wrong issuer": provider_token(key, "RS256", role="admin", iss="https://evil.example/"),
        "wrong audience": provider_token(key, "RS256", role="admin", aud="someone-else"),
        "no audience": jwt.encode({k: v for k, v in claims.items() if k != "aud"}, key, algorithm="RS256"),
        "ES256 while the key is RSA": jwt.encode(claims, private_key("ES256"), algorithm="ES256"),
        "no role": provider_token(key, "RS256", role=None),
        "unknown role": provider_token(key, "RS256", role="superuser"),
        "expired": provider_token(key, "RS256", exp=now - 10),
    }
    cart = await lc.cart("alice")
    for what, token in forged.items():
        status, body = await create_cart(lc, token)
        assert status == 401 and body["error"]["code"] == "unauthorized", what
        client = await lc.client(cart, token, sync=False)
        code, _ = await client.wait_closed()
        assert code == 4401, what
    good = provider_token(key, "RS256", sub="alice")
    assert (await lc.call("GET", f"/api/carts/{cart}", good))[0] == 200


async def first_on_stock_feed(lc: Livecart, token: str) -> aiohttp.WSMessage:
    """What `/ws/stock` sends first to a reader with `token`: a level, or its close."""
    url = f"ws://{lc.config.host}:{lc.config.port}/ws/stock?skus=TEE&token={token}"
    async with lc.session.ws_connect(url) as ws:
        return await ws.receive(timeout=30)


async def test_the_stock_feed_takes_a_providers_token_and_refuses_forged_ones(pem_server) -> None:
    lc, key = pem_server
    await lc.product("TEE", stock=3)
    first = await first_on_stock_feed(lc, provider_token(key, "RS256", sub="pat"))
    assert first.type is aiohttp.WSMsgType.TEXT and json.loads(first.data)["sku"] == "TEE", first
    forged = provider_token(private_key("RS256"), "RS256", sub="pat")
    first = await first_on_stock_feed(lc, forged)
    assert first.type is aiohttp.WSMsgType.CLOSE and first.data == 4401, first


async def test_the_role_comes_from_the_configured_claim(tmp_path: Path, session) -> None:
    key = private_key("ES256")
    config = make_config(tmp_path, jwt_public_key=pem(key), jwt_role_claim="realm_access.roles")
    lc = await Livecart(config, session).start()
    try:
        admin = provider_token(key, "ES256", sub="ops", role=None, realm_access={"roles": ["offline", "admin"]})
        status, _ = await lc.call("PUT", "/api/catalog/MUG", admin, json={"name": "Mug", "price": 900})
        assert status == 200
        plain = provider_token(key, "ES256", sub="ops", role="admin")  # `role` is not the claim any more
        assert (await lc.call("PUT", "/api/catalog/MUG", plain, json={"name": "Mug", "price": 900}))[0] == 401
    finally:
        await lc.stop()


@dataclass
class Jwks:
    """A JWKS endpoint on loopback whose keys and behaviour the test changes."""

    keys: list[dict[str, Any]]
    mode: str = "ok"  # ok | down | slow | garbage
    fetches: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.mode == "down":
            return web.Response(status=503, text="maintenance")
        if self.mode == "garbage":
            return web.Response(text="<html>not json{", content_type="application/json")
        if self.mode == "slow":
            await self.released.wait()
        return web.json_response({"keys": self.keys})


@pytest.fixture
async def jwks() -> AsyncIterator[Jwks]:
    endpoint = Jwks([])
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", endpoint.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", endpoint.port).start()
    yield endpoint
    endpoint.released.set()
    await runner.cleanup()


async def test_jwks_keys_are_fetched_cached_and_fetched_again_for_a_new_kid(jwks: Jwks, tmp_path: Path, session) -> None:
    old, new = private_key("RS256"), private_key("EdDSA")
    jwks.keys = [jwk(old, "k1")]
    config = make_config(tmp_path, jwt_jwks_url=jwks.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
                         jwks_min_interval=0.5)
    lc = await Livecart(config, session).start()
    try:
        assert jwks.fetches == 1  # at start-up
        for _ in range(5):
            assert (await create_cart(lc, provider_token(old, "RS256", kid="k1")))[0] == 201
        assert jwks.fetches == 1  # cached
        jwks.keys = [jwk(old, "k1"), jwk(new, "k2")]  # the provider rotates in a new key
        await asyncio.sleep(0.6)
        status, body = await create_cart(lc, provider_token(new, "EdDSA", kid="k2"))
        assert status == 201, body
        assert jwks.fetches == 2
        # a kid the provider does not have: refused, and a key of the JWKS under another kid does not help
        status, body = await create_cart(lc, provider_token(new, "EdDSA", kid="k9"))
        assert status == 401 and "kid" in body["error"]["message"]
        status, _ = await create_cart(lc, provider_token(new, "EdDSA", kid="k1"))
        assert status == 401
    finally:
        await lc.stop()


@pytest.mark.parametrize("mode", ["down", "garbage", "slow"])
async def test_a_broken_jwks_endpoint_leaves_cached_keys_working_without_a_fetch_storm(
        mode: str, jwks: Jwks, tmp_path: Path, session) -> None:
    key = private_key("ES256")
    jwks.keys = [jwk(key, "k1")]
    config = make_config(tmp_path, jwt_jwks_url=jwks.url, jwks_min_interval=1.0, jwks_timeout=1.0)
    lc = await Livecart(config, session).start()
    try:
        assert jwks.fetches == 1
        jwks.mode = mode
        await asyncio.sleep(1.1)  # past the bound: the next unknown kid may fetch once
        unknown = [create_cart(lc, provider_token(key, "ES256", sub=f"u{i}", kid=f"new-{i}")) for i in range(30)]
        known = [create_cart(lc, provider_token(key, "ES256", sub=f"k{i}", kid="k1")) for i in range(10)]
        results = await asyncio.gather(*unknown, *known)
        assert [status for status, _ in results[:30]] == [401] * 30  # refused, not a 500 or a hang
        assert [status for status, _ in results[30:]] == [201] * 10  # cached keys keep working
        assert jwks.fetches == 2  # one fetch for the whole burst of unknown kids (it failed or timed out)
        again = [create_cart(lc, provider_token(key, "ES256", sub=f"v{i}", kid=f"newer-{i}")) for i in range(10)]
        assert [status for status, _ in await asyncio.gather(*again)] == [401] * 10
        assert jwks.fetches == 2  # within the bound: no fetch at all
        assert (await create_cart(lc, provider_token(key, "ES256", kid="k1")))[0] == 201
    finally:
        await lc.stop()


def test_the_cli_refuses_a_key_that_is_no_public_key(tmp_path: Path) -> None:
    bad = tmp_path / "key.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path), "--jwt-public-key", str(bad)])
    assert result.exit_code == 2 and "--jwt-public-key" in result.output
    result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path)],
                                env={"LIVECART_JWT_JWKS_URL": "ftp://idp/jwks"})
    assert result.exit_code == 2 and "--jwt-jwks-url" in result.output
