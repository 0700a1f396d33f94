"""A real SMTP server (aiosmtpd) on a loopback port that tests steer: accept, refuse, hang, drop mid-DATA."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Callable, cast

from aiosmtpd.smtp import SMTP, Envelope, Session

from harness import free_port

# What the sink does with the nth message for a recipient (1, 2, …): "ok" (250), "refuse" (451),
# "reject" (550 to RCPT), "hang" (no answer until released), "drop" (connection closed mid-DATA).
Rule = Callable[[str, int], str]


@dataclass
class Caught:
    to: str
    message: EmailMessage
    outcome: str

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        return part.get_content() if part is not None else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        return part.get_content() if part is not None else ""


class _SinkSMTP(SMTP):
    async def smtp_RCPT(self, arg: str) -> None:
        sink = cast("Sink", self.event_handler)
        address = arg.partition(":")[2].strip().strip("<>").lower()
        if sink.rule(address, sink.tries(address) + 1) == "reject":
            sink.attempts.append(address)
            await self.push("550 5.1.1 no such user here")
            return
        await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        sink = cast("Sink", self.event_handler)
        address = (self.envelope.rcpt_tos or [""])[0].lower()
        if self.envelope.rcpt_tos and sink.rule(address, sink.tries(address) + 1) == "drop":
            sink.attempts.append(address)
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.readline()  # some of the message, then the line goes dead
            self.transport.close()
            return
        await super().smtp_DATA(arg)


@dataclass
class Sink:
    """`await Sink().start()`; `delivered()` lists the mails answered with 250."""

    port: int = field(default_factory=free_port)
    rule: Rule = lambda to, nth: "ok"
    caught: list[Caught] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)  # recipient of each DATA or refused RCPT
    release: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.base_events.Server | None = None
    sessions: set[SMTP] = field(default_factory=set)

    def tries(self, address: str) -> int:
        return sum(1 for a in self.attempts if a == address)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        to = envelope.rcpt_tos[0].lower()
        outcome = self.rule(to, self.tries(to) + 1)
        self.attempts.append(to)
        message = cast(EmailMessage, message_from_bytes(cast(bytes, envelope.content), policy=policy.default))
        if server.transport is None or server.transport.is_closing():
            # `down()` cut this connection; what was already buffered is still read, but no answer can
            # reach the sender: not delivered (the sender tries again, as it must)
            self.caught.append(Caught(to, message, "cut"))
            return "421 4.3.0 closing"
        if outcome == "hang":
            await self.release.wait()
            self.caught.append(Caught(to, message, "hang"))  # answered after the sender gave up: not delivered
            return "451 4.4.2 too late"
        if outcome == "refuse":
            self.caught.append(Caught(to, message, "refuse"))
            return "451 4.3.0 try again later"
        self.caught.append(Caught(to, message, "ok"))
        return "250 2.0.0 OK"

    def _protocol(self) -> SMTP:
        session = _SinkSMTP(self, hostname="sink")
        self.sessions.add(session)
        return session

    async def start(self) -> "Sink":
        await self.up()
        return self

    async def up(self) -> None:
        self.server = await asyncio.get_running_loop().create_server(self._protocol, "127.0.0.1", self.port)

    async def down(self) -> None:
        """Stops listening and cuts every open connection: the server is gone."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        self.sessions.clear()

    async def close(self) -> None:
        self.release.set()
        await self.down()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def delivered(self, to: str | None = None) -> list[Caught]:
        return [c for c in self.caught if c.outcome == "ok" and to in (None, c.to)]


