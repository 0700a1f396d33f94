"""Attacker-side websocket tools for the hardening tests: hand-made awareness payloads, raw
frames an honest client library would never send, and reading how the server closed a socket."""
from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Iterable

import aiohttp
from pycrdt import write_var_uint

CLOSED_TYPES = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR)


def awareness_payload(entries: Iterable[tuple[int, int, str | bytes]]) -> bytes:
    """An awareness update as y-protocols writes it: (clientId, clock, state as JSON text) each,
    with the text taken as given (NaN, a number, bytes that are not UTF-8)."""
    entries = list(entries)
    out = [write_var_uint(len(entries))]
    for client_id, clock, state in entries:
        data = state.encode() if isinstance(state, str) else state
        out += [write_var_uint(client_id), write_var_uint(clock), write_var_uint(len(data)), data]
    return b"".join(out)


def awareness_frame(entries: Iterable[tuple[int, int, str | bytes]]) -> bytes:
    """The y-protocols message (type 1) carrying `awareness_payload(entries)`."""
    payload = awareness_payload(entries)
    return write_var_uint(1) + write_var_uint(len(payload)) + payload


async def close_of(ws: aiohttp.ClientWebSocketResponse, timeout: float = 20.0) -> tuple[int | None, str]:
    """Reads (and drops) what the server sends until it closes; its close code and reason.

    The code is the one in the server's close frame, as a browser reports it (RFC 6455 7.1.5):
    aiohttp's client overwrites `close_code` with 1006 when its own reply to that frame cannot
    be written (the server already hung up), which says nothing about how the server closed."""
    async def read() -> tuple[int | None, str]:
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.CLOSE:
                return msg.data, msg.extra if isinstance(msg.extra, str) else ""
            if msg.type in CLOSED_TYPES:
                return ws.close_code, msg.extra if isinstance(msg.extra, str) else ""
    return await asyncio.wait_for(read(), timeout)


# -- raw frames: lengths and opcodes as an attacker writes them ---------------------------------

def client_frame(opcode: int, payload: bytes, declared: int | None = None, fin: bool = True) -> bytes:
    """A masked client frame; `declared` overrides the length field (a header that lies)."""
    n = len(payload) if declared is None else declared
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawSocket:
    """A websocket spoken byte by byte over a plain TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int, path: str) -> "RawSocket":
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert status.startswith(b"HTTP/1.1 101"), status[:200]
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def close_frame(self, timeout: float = 20.0) -> tuple[int | None, str]:
        """Skips server frames up to its close frame: (code, reason); (None, "") if the
        connection ended without one."""
        async def read() -> tuple[int | None, str]:
            while True:
                head = await self.reader.readexactly(2)
                n = head[1] & 0x7F
                if n == 126:
                    n = struct.unpack(">H", await self.reader.readexactly(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", await self.reader.readexactly(8))[0]
                body = await self.reader.readexactly(n)
                if head[0] & 0x0F == 0x8:
                    code = struct.unpack(">H", body[:2])[0] if len(body) >= 2 else None
                    return code, body[2:].decode(errors="replace")
        try:
            return await asyncio.wait_for(read(), timeout)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None, ""

    def close(self) -> None:
        self.writer.close()
