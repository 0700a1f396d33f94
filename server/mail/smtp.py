"""Sending one message over real SMTP (aiosmtplib), reusing a few open connections, and what a failure means."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import aiosmtplib

from ..outbox import Outcome

IDLE_SECONDS = 10.0  # an open connection unused this long is closed rather than reused


@dataclass(frozen=True)
class SmtpTarget:
    """Where mail goes: parsed from `smtp://[user:pass@]host[:port]` or `smtps://…`."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> "SmtpTarget":
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"not an smtp:// or smtps:// URL: {url!r}")
        tls = parts.scheme == "smtps"
        return cls(parts.hostname, parts.port or (465 if tls else 25), tls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


def classify(exc: BaseException, timeout: float) -> Outcome:
    """A failed send: every recipient refused with a 5xx is permanent (trying again would be
    refused again and look like spam); everything else (refused or dropped connections, timeouts,
    4xx, a 5xx to MAIL or DATA, which a misconfigured or overloaded server gives too) is retried."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        return Outcome(False, f"recipient refused: {detail}", permanent=bool(codes) and all(c >= 500 for c in codes))
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return Outcome(False, f"SMTP {exc.code} {exc.message}")
    if isinstance(exc, (asyncio.TimeoutError, aiosmtplib.SMTPTimeoutError)):
        return Outcome(False, f"no answer in {timeout:g} s")
    return Outcome(False, f"{type(exc).__name__}: {exc}")


@dataclass
class SmtpSender:
    """Sends messages to one SMTP server; connections are kept open for the next message."""

    target: SmtpTarget
    timeout: float = 30.0  # seconds for one message, connect to the answer after DATA
    idle: list[tuple[float, aiosmtplib.SMTP]] = field(default_factory=list)

    async def send(self, sender: str, recipient: str, message: bytes) -> Outcome:
        """One attempt at one message. A kept connection that turns out closed is replaced once, at once."""
        smtp: aiosmtplib.SMTP | None = None
        try:
            async with asyncio.timeout(self.timeout):
                reused, smtp = await self._connection()
                try:
                    await smtp.sendmail(sender, [recipient], message)
                except aiosmtplib.SMTPServerDisconnected:
                    if not reused:
                        raise
                    smtp.close()  # the server ended an idle connection: a fresh one, same attempt
                    smtp = await self._connect()
                    await smtp.sendmail(sender, [recipient], message)
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            if smtp is not None:
                smtp.close()
            return classify(exc, self.timeout)
        except BaseException:
            if smtp is not None:
                smtp.close()
            raise
        self.idle.append((time.monotonic(), smtp))
        return Outcome(True, "250")

    async def _connection(self) -> tuple[bool, aiosmtplib.SMTP]:
        now = time.monotonic()
        while self.idle:
            since, smtp = self.idle.pop()
            if now - since < IDLE_SECONDS and smtp.is_connected:
                return True, smtp
            smtp.close()
        return False, await self._connect()

    async def _connect(self) -> aiosmtplib.SMTP:
        t = self.target
        smtp = aiosmtplib.SMTP(hostname=t.host, port=t.port, use_tls=t.tls, username=t.username,
                               password=t.password, timeout=self.timeout, local_hostname="livecart")
        await smtp.connect()
        return smtp

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for _, smtp in idle:
            try:
                async with asyncio.timeout(2):
                    await smtp.quit()
            except Exception:
                smtp.close()
