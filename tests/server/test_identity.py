"""Omnichannel identity over real websockets: walk-in carts, claims and merges, invites, kiosks, call centre."""
from __future__ import annotations

import asyncio
import time

from harness import Livecart, make_config
from livecart.crdt.cart import new_line
from yclient import YClient, eventually


async def stock(lc: Livecart, sku: str, on_hand: int) -> None:
    assert (await lc.call("PUT", f"/api/stock/{sku}", lc.token("root", "admin"), json={"onHand": on_hand}))[0] == 200


def holds(client: YClient) -> dict:
    return client.snapshot()["server"].get("holds", {})


async def test_walk_in_cart_claimed_by_invite_merges_live_and_keeps_the_last_unit(lc: Livecart, session) -> None:
    await stock(lc, "MUG", 1)  # the last unit
    await stock(lc, "TEE", 10)
    amy = lc.token("amy", "assistant")
    status, walk_in = await lc.call("POST", "/api/carts", amy, json={"channel": "store"})
    assert status == 201
    walk_in_id = walk_in["cartId"]
    assistant = await lc.client(walk_in_id, amy)
    assistant.lines["a1"] = new_line("MUG", 1, "amy", "store", 1)
    assistant.lines["a2"] = new_line("TEE", 2, "amy", "store", 2)
    await eventually(lambda: holds(assistant).get("a1", {}).get("status") == "held"
                     and holds(assistant).get("a2", {}).get("status") == "held", what="walk-in holds")
    # the customer already has a cart open on the app, with a TEE line of their own
    own_cart = await lc.cart("carol", "app")
    phone = await lc.client(own_cart, lc.token("carol"))
    phone.lines["c1"] = new_line("TEE", 3, "carol", "app", 3)
    await eventually(lambda: holds(phone).get("c1", {}).get("qty") == 3, what="own hold")
    _, invite = await lc.call("POST", f"/api/carts/{walk_in_id}/invites", amy)
    # a third shopper races for the last mug while the claim happens
    rival_cart = await lc.cart("rita")
    rival = await lc.client(rival_cart, lc.token("rita"))
    claim = asyncio.ensure_future(lc.call("POST", f"/api/invites/{invite['code']}/accept", lc.token("carol")))
    for i in range(20):
        rival.lines[f"r{i}"] = new_line("MUG", 1, "rita", "web", i)
        await asyncio.sleep(0.005)
    status, body = await claim
    assert status == 200 and body["cartId"] == own_cart
    code, reason = await assistant.wait_closed()
    assert code == 4409 and own_cart in reason
    await eventually(lambda: any(l["sku"] == "MUG" for l in phone.snapshot()["lines"].values()), what="merged live")
    lines = phone.snapshot()["lines"]
    tees = [l for l in lines.values() if l["sku"] == "TEE"]
    assert len(tees) == 1 and tees[0]["qty"] == 3  # same SKU: one line, the larger quantity
    mug_line = next(k for k, l in lines.items() if l["sku"] == "MUG")
    await eventually(lambda: holds(phone).get(mug_line, {}).get("status") == "held", what="mug held for carol")
    await eventually(lambda: all(h for h in holds(rival).values()) and len(holds(rival)) == 20, what="rival decided")
    assert all(h["status"] == "unavailable" for h in holds(rival).values())
    _, levels = await lc.call("GET", "/api/stock?skus=MUG,TEE")
    assert levels["MUG"] == {"onHand": 1, "held": 1, "available": 0}
    assert levels["TEE"]["held"] == 3  # the surplus of the combined line went back
    # later connections to the walk-in cart are told where it went; the assistant may follow
    late = await YClient(session, lc.ws_url(walk_in_id, amy)).connect()
    code, reason = await late.wait_closed()
    assert code == 4409 and own_cart in reason
    follow = await lc.client(own_cart, amy)
    assert mug_line in follow.lines


async def test_claiming_an_anonymous_session_merges_its_carts(lc: Livecart) -> None:
    await stock(lc, "TEE", 10)
    status, anon = await lc.call("POST", "/api/sessions/anonymous")
    cart = (await lc.call("POST", "/api/carts", anon["token"], json={"channel": "web"}))[1]["cartId"]
    assert (await lc.call("POST", f"/api/carts/{cart}/lines", anon["token"], json={"sku": "TEE", "qty": 2}))[0] == 201
    status, body = await lc.call("POST", "/api/sessions/claim", lc.token("dora"), json={"anonymousToken": anon["token"]})
    assert status == 200
    status, merged = await lc.call("GET", f"/api/carts/{body['cartId']}", lc.token("dora"))
    assert [l["sku"] for l in merged["lines"].values()] == ["TEE"]
    status, old = await lc.call("GET", f"/api/carts/{cart}", anon["token"])
    assert old["status"] == "merged" and old["mergedInto"] == body["cartId"]
    assert (await lc.call("POST", "/api/sessions/claim", lc.token("dora"), json={"anonymousToken": "junk"}))[0] == 400


async def test_merge_errors_change_nothing(lc: Livecart) -> None:
    a, b = await lc.cart("alice"), await lc.cart("alice")
    tok = lc.token("alice")
    assert (await lc.call("POST", f"/api/carts/{a}/lines", tok, json={"sku": "TEE", "qty": 1}))[0] == 201
    status, body = await lc.call("POST", f"/api/carts/{a}/merge", tok, json={"into": a})
    assert status == 400 and body["error"]["code"] == "same_cart"
    assert (await lc.call("POST", f"/api/carts/{a}/merge", tok, json={"into": b}))[0] == 200
    await asyncio.sleep(0)
    status, body = await lc.call("POST", f"/api/carts/{a}/merge", tok, json={"into": b})
    assert status == 409
    _, cart_b = await lc.call("GET", f"/api/carts/{b}", tok)
    assert len(cart_b["lines"]) == 1  # merged once, not twice
    bob_cart = await lc.cart("bob")
    assert (await lc.call("POST", f"/api/carts/{b}/merge", tok, json={"into": bob_cart}))[0] == 403
    # editing a merged cart over HTTP is refused too
    assert (await lc.call("POST", f"/api/carts/{a}/lines", tok, json={"sku": "TEE", "qty": 1}))[0] == 409


async def test_invites_are_single_use_and_guessing_is_rate_limited(lc: Livecart) -> None:
    cart = await lc.cart("alice")
    _, invite = await lc.call("POST", f"/api/carts/{cart}/invites", lc.token("alice"))
    assert len(invite["code"]) == 6 and invite["expiresAt"] > time.time() * 1000
    amy, ben = lc.token("amy", "assistant"), lc.token("ben", "assistant")
    assert (await lc.call("POST", f"/api/invites/{invite['code'].lower()}/accept", amy))[1] == {"cartId": cart}
    assert (await lc.call("POST", f"/api/invites/{invite['code']}/accept", ben))[0] == 404  # used
    statuses = [(await lc.call("POST", f"/api/invites/ZZZZZ{i}/accept", ben))[0] for i in range(12)]
    assert statuses[:9] == [404] * 9 and statuses[-1] == 429
    _, other = await lc.call("POST", f"/api/carts/{cart}/invites", lc.token("alice"))
    assert (await lc.call("POST", f"/api/invites/{other['code']}/accept", lc.token("bob")))[0] == 403


async def test_operator_edits_record_who_and_channel(lc: Livecart) -> None:
    await stock(lc, "TEE", 5)
    cart = await lc.cart("alice")
    otto = lc.token("otto", "operator")
    assert (await lc.call("GET", f"/api/carts/{cart}", otto))[0] == 403  # not looked up yet
    status, listed = await lc.call("GET", "/api/carts?owner=alice", otto)
    assert status == 200 and [c["id"] for c in listed["carts"]] == [cart]
    phone = await lc.client(cart, lc.token("alice"))
    status, body = await lc.call("POST", f"/api/carts/{cart}/lines", otto, json={"sku": "TEE", "qty": 2})
    assert status == 201
    await eventually(lambda: body["lineId"] in phone.lines, what="operator's line live on the phone")
    line = phone.snapshot()["lines"][body["lineId"]]
    assert (line["addedBy"], line["channel"]) == ("otto", "call-centre")
    await eventually(lambda: holds(phone).get(body["lineId"], {}).get("qty") == 2, what="held")
    bad = await lc.call("POST", f"/api/carts/{cart}/lines", otto, json={"sku": "TEE", "qty": 500})
    assert bad[0] == 400 and "qty" in bad[1]["error"]["message"]
    assert (await lc.call("POST", f"/api/carts/{cart}/lines", otto, json={"sku": "NOPE", "qty": 1}))[0] == 400
    assert len(phone.lines) == 1  # refused edits never reach anyone


async def test_kiosk_sign_out_closes_its_socket_and_revokes_access_but_not_the_phones(lc: Livecart, session) -> None:
    cart = await lc.cart("kim")
    _, code = await lc.call("POST", "/api/kiosk-codes", lc.token("kim"))
    kiosk = lc.token("kiosk-7", "kiosk")
    status, signed_in = await lc.call("POST", "/api/kiosks/kiosk-7/sessions", kiosk, json={"code": code["code"]})
    assert status == 201 and signed_in["cartId"] == cart
    screen = await lc.client(cart, kiosk)
    phone = await lc.client(cart, lc.token("kim"))
    screen.lines["k1"] = new_line("TEE", 1, "kiosk-7", "kiosk", 1)
    await eventually(lambda: "k1" in phone.lines, what="kiosk edit")
    assert (await lc.call("DELETE", "/api/kiosks/kiosk-7/sessions", kiosk))[1] == {"signedOut": True}
    code_, reason = await screen.wait_closed()
    assert code_ == 4403 and "signed out" in reason
    again = await YClient(session, lc.ws_url(cart, kiosk)).connect()
    assert (await again.wait_closed())[0] == 4403
    assert (await lc.call("GET", f"/api/carts/{cart}", kiosk))[0] == 403
    assert not phone.closed.is_set()
    phone.lines["p1"] = new_line("TEE", 1, "kim", "app", 2)  # the cart stays the customer's
    assert (await lc.call("GET", f"/api/carts/{cart}", lc.token("kim")))[0] == 200
    assert (await lc.call("POST", "/api/kiosks/kiosk-7/sessions", kiosk, json={"code": code["code"]}))[0] == 404


async def test_kiosk_signs_out_by_itself_when_idle(tmp_path, session) -> None:
    # Pings 0.25 s apart against a 3 s idle time: a busy machine would have to hold one ping back
    # for over ten times its interval to sign the kiosk out early (0.3 s against 0.6 s was flaky).
    idle = 3.0
    lc = await Livecart(make_config(tmp_path, kiosk_idle_seconds=idle), session).start()
    await lc.product("TEE")
    cart = await lc.cart("kim")
    _, code = await lc.call("POST", "/api/kiosk-codes", lc.token("kim"))
    kiosk = lc.token("k9", "kiosk")
    signed_in = time.monotonic()
    assert (await lc.call("POST", "/api/kiosks/k9/sessions", kiosk, json={"code": code["code"]}))[0] == 201
    screen = await lc.client(cart, kiosk)
    while time.monotonic() < signed_in + idle + 0.5:  # pings keep it signed in past its idle time
        await asyncio.sleep(0.25)
        assert (await lc.call("POST", "/api/kiosks/k9/sessions/ping", kiosk))[0] == 200
    assert not screen.closed.is_set()
    code_, reason = await screen.wait_closed()
    assert code_ == 4403 and "idle" in reason
    assert (await lc.call("GET", "/api/kiosks/k9/sessions", kiosk))[0] == 404
    await lc.stop()


async def test_profile_favourites_and_suggestions_from_real_data(lc: Livecart) -> None:
    tok = lc.token("alice")
    assert (await lc.call("PUT", "/api/customers/alice/favourites/MUG", tok))[1] == {"favourites": ["MUG"]}
    assert (await lc.call("PUT", "/api/customers/alice/favourites/NOPE", tok))[0] == 404
    await stock(lc, "TEE", 3)
    await stock(lc, "MUG", 3)
    _, profile = await lc.call("GET", "/api/customers/alice", tok)
    assert profile["favourites"] == ["MUG"] and profile["recentOrders"] == []
    assert profile["suggestions"] == ["TEE"]  # in stock, not already a favourite
    assert (await lc.call("DELETE", "/api/customers/alice/favourites/MUG", tok))[1] == {"favourites": []}
