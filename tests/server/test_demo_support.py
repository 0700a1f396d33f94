"""What the demo pages need from the server (issue 19 #5): the kiosk's real idle limit without a
404, and the demo sign-in that only `livecart demo` has."""
from __future__ import annotations

import aiohttp

from harness import Livecart, make_config
from livecart.server import auth
from processes import ServerProcess


async def test_a_kiosk_learns_its_idle_limit_and_its_customer_without_a_404(tmp_path, session) -> None:
    lc = await Livecart(make_config(tmp_path, kiosk_idle_seconds=37), session).start()
    try:
        kiosk = lc.token("k1", "kiosk")
        status, info = await lc.call("GET", "/api/kiosks/k1", kiosk)
        assert (status, info) == (200, {"kioskId": "k1", "idleSeconds": 37, "session": None})
        cart = await lc.cart("kim")
        _, code = await lc.call("POST", "/api/kiosk-codes", lc.token("kim"))
        assert (await lc.call("POST", "/api/kiosks/k1/sessions", kiosk, json={"code": code["code"]}))[0] == 201
        _, info = await lc.call("GET", "/api/kiosks/k1", kiosk)
        assert info["session"]["cartId"] == cart and info["session"]["customerId"] == "kim"
        assert 0 < info["session"]["idleSecondsLeft"] <= 37
        assert (await lc.call("GET", "/api/kiosks/k1", lc.token("k2", "kiosk")))[0] == 403  # another kiosk
    finally:
        await lc.stop()


async def test_demo_sign_in_mints_a_token_for_a_demo_person(tmp_path, session) -> None:
    config = make_config(tmp_path)
    config.demo = True
    lc = await Livecart(config, session).start()
    try:
        status, body = await lc.call("GET", "/api/demo/people")
        assert status == 200
        assert {p["role"] for p in body["people"]} >= {"customer", "assistant", "operator", "admin"}
        status, signed = await lc.call("POST", "/api/demo/sessions", json={"person": "admin"})
        assert status == 201 and signed["role"] == "admin"
        who = auth.verify(config.jwt_secret, signed["token"])
        assert (who.sub, who.role) == (signed["sub"], "admin")
        assert (await lc.call("GET", "/api/orders", signed["token"]))[0] != 401  # the server takes it
        status, bad = await lc.call("POST", "/api/demo/sessions", json={"person": "mallory"})
        assert status == 400 and bad["error"]["code"] == "unknown_person"
        _, doc = await lc.call("GET", "/api/openapi.json")
        assert "/api/demo/sessions" in doc["paths"] and "/api/demo/people" in doc["paths"]
    finally:
        await lc.stop()


async def test_livecart_serve_has_no_demo_sign_in(tmp_path) -> None:
    proc = ServerProcess(tmp_path / "data").start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(proc.base + "/api/demo/sessions", json={"person": "admin"}) as r:
                assert r.status == 404
            async with http.get(proc.base + "/api/demo/people") as r:
                assert r.status == 404
            async with http.get(proc.base + "/api/openapi.json") as r:
                assert not any(path.startswith("/api/demo/") for path in (await r.json())["paths"])
    finally:
        proc.stop()
