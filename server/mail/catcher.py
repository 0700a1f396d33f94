"""The demo's local mail catcher: a real SMTP server (aiosmtpd) on loopback that keeps what it is sent."""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import partial
from typing import Any, cast

from aiosmtpd.smtp import SMTP, Envelope, Session

from ..clock import now_ms

KEEP = 500  # the newest caught mails kept in memory


def summary(raw: bytes, envelope_to: list[str]) -> dict[str, Any]:
    """A caught mail as JSON: headers that matter, the text and HTML parts."""
    message = cast(EmailMessage, message_from_bytes(raw, policy=policy.default))
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    return {"at": now_ms(), "to": envelope_to, "from": str(message.get("From", "")),
            "subject": str(message.get("Subject", "")), "messageId": str(message.get("Message-ID", "")),
            "listUnsubscribe": str(message.get("List-Unsubscribe", "")),
            "text": text.get_content() if text is not None else "",
            "html": html.get_content() if html is not None else ""}


@dataclass
class Catcher:
    """`await Catcher.start(host, port)`; `mails` are the newest first-in caught mails."""

    server: asyncio.base_events.Server | None = None
    port: int = 0
    mails: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP))

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.mails.append(summary(cast(bytes, envelope.original_content or envelope.content),
                                  list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    @classmethod
    async def start(cls, host: str, port: int) -> "Catcher":
        catcher = cls()
        loop = asyncio.get_running_loop()
        catcher.server = await loop.create_server(partial(SMTP, catcher, hostname="livecart-catcher"), host, port)
        catcher.port = catcher.server.sockets[0].getsockname()[1]
        return catcher

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
