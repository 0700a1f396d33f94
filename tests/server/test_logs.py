"""Logs of a real `livecart serve`: the access log (no token, request id), one line per shop event, JSON or
text, and a log file SIGHUP reopens."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp

from harness import SECRET, free_port
from livecart.crdt.cart import new_line
from livecart.server import auth
from processes import ServerProcess
from yclient import YClient, eventually

ADMIN = auth.mint(SECRET, "root", "admin")


async def call(session: aiohttp.ClientSession, server: ServerProcess, method: str, path: str, token: str | None,
               body: Any = None, **headers: str) -> tuple[int, Any]:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with session.request(method, server.base + path, json=body, headers=headers) as r:
        return r.status, await r.json() if r.content_type == "application/json" else await r.text()


def log_of(server: ServerProcess) -> str:
    return (server.data_dir.parent / f"server-{server.port}.log").read_text()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_access_log_and_events_in_json_never_show_a_token(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    dead_hook = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens: every delivery fails and is retried
    server = ServerProcess(tmp_path / "data", "--log-level", "info", "--log-format", "json",
                           "--webhook-url", dead_hook, "--webhook-retry-base", "0.05").start()
    alice = auth.mint(SECRET, "alice", "customer")
    try:
        assert (await call(session, server, "PUT", "/api/catalog/TEE", ADMIN, {"name": "Tee", "price": 1500}))[0] == 200
        assert (await call(session, server, "PUT", "/api/stock/TEE", ADMIN, {"onHand": 50}))[0] == 200
        status, made = await call(session, server, "POST", "/api/carts", alice, {"channel": "web"},
                                  **{"X-Request-Id": "req-from-the-balancer"})
        assert status == 201
        cart = made["cartId"]
        status, other = await call(session, server, "POST", "/api/carts", alice, {"channel": "app"})
        # a rejected edit over the cart socket (the token in the query, as browsers send it)
        client = await YClient(session, server.ws(f"/ws/carts/{cart}?token={alice}")).connect()
        await client.wait_synced()
        client.lines["bad"] = new_line("NO-SUCH-SKU", 1, "alice", "web", 1)
        code, reason = await client.wait_closed()
        assert code == 4400 and "NO-SUCH-SKU" in reason
        big = await YClient(session, server.ws(f"/ws/carts/{cart}?token={alice}")).connect()
        await big.wait_synced()
        await big.send_raw(b"\0" * ((1 << 20) + 10))  # over --max-message-bytes: refused by the reader
        assert (await big.wait_closed())[0] == 4413
        async with session.get(server.base + f"/api/stock?skus=TEE&token={alice}") as r:
            assert r.status == 200
        # a merge, and an order that changes status
        assert (await call(session, server, "POST", f"/api/carts/{other['cartId']}/merge", alice, {"into": cart}))[0] == 200
        status, added = await call(session, server, "POST", f"/api/carts/{cart}/lines", alice, {"sku": "TEE", "qty": 1})
        assert status == 201

        async def held() -> bool:
            holds = (await call(session, server, "GET", f"/api/carts/{cart}", alice))[1]["holds"]
            return holds.get(added["lineId"], {}).get("status") == "held"
        await eventually(held, what="the line held")
        status, order = await call(session, server, "POST", f"/api/carts/{cart}/checkout", alice)
        assert status == 201, order
        status, _ = await call(session, server, "POST", f"/api/orders/{order['orderId']}/payment", ADMIN,
                               {"status": "paid", "reference": "psp-1"})
        assert status == 200
        await eventually(lambda: '"webhook.retry"' in log_of(server), what="a webhook retry logged")
    finally:
        server.stop()
    text = log_of(server)
    lines = json_lines(text)
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    for token in (alice, ADMIN):
        assert token not in text
        assert token.split(".")[1] not in text  # not even the claims part
    requests = [line for line in lines if line.get("event") == "http.request"]
    created = next(line for line in requests if line["method"] == "POST" and line["path"] == "/api/carts")
    assert created["status"] == 201 and created["request_id"] == "req-from-the-balancer" and created["ms"] >= 0
    stock = next(line for line in requests if line["path"].startswith("/api/stock?"))
    assert stock["path"] == "/api/stock?skus=TEE&token=[redacted]"
    socket = next(line for line in requests if line["path"].startswith(f"/ws/carts/{cart}"))
    assert socket["path"] == f"/ws/carts/{cart}?token=[redacted]" and socket["request_id"]
    by_event: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_event.setdefault(line.get("event", ""), []).append(line)
    assert {line["cartId"] for line in by_event["cart.created"]} == {cart, other["cartId"]}
    assert by_event["cart.merged"][0]["cartId"] == other["cartId"] and by_event["cart.merged"][0]["into"] == cart
    rejected = by_event["cart.rejected"][0]
    assert rejected["code"] == 4400 and "NO-SUCH-SKU" in rejected["rule"] and rejected["sub"] == "alice"
    assert rejected["request_id"] == socket["request_id"]  # which connection: the socket's own request
    too_large = by_event["socket.rejected"][0]
    assert too_large["code"] == 4413 and "message over" in too_large["rule"] and too_large["request_id"]
    assert [line["state"] for line in by_event["order.status"]] == ["confirmed"]
    assert by_event["order.created"][0]["orderId"] == order["orderId"]
    retry = by_event["webhook.retry"][0]
    assert retry["attempt"] >= 1 and retry["error"] and "nextInSeconds" in retry
    assert "cart.line_added" not in by_event  # every edit's events are debug, not info


async def test_text_logs_go_to_a_file_that_sighup_reopens(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    log_file = tmp_path / "livecart.log"
    server = ServerProcess(tmp_path / "data", "--log-level", "info", "--log-file", str(log_file)).start()
    try:
        assert (await call(session, server, "GET", "/healthz", None))[0] == 200
        await eventually(lambda: "GET /healthz 200" in log_file.read_text(), what="the access line")
        rotated = tmp_path / "livecart.log.1"
        os.rename(log_file, rotated)  # what logrotate does, before it signals
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        await eventually(log_file.exists, what="the log reopened")
        assert (await call(session, server, "POST", "/api/carts", auth.mint(SECRET, "bob", "customer"),
                           {"channel": "web"}))[0] == 201
        await eventually(lambda: "cart.created cartId=" in log_file.read_text(), what="the event in the new file")
        await eventually(lambda: "POST /api/carts 201" in log_file.read_text(), what="the access line in the new file")
        assert "cart.created" not in rotated.read_text()
        assert server.proc.poll() is None  # SIGHUP did not stop it
    finally:
        server.stop()
