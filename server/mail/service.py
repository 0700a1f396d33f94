"""The mail service: two persisted outboxes (order mail; mailings at a set pace) sending over SMTP.

- Order mail is rendered when it is queued and kept whole in the job, so every attempt sends the
  same bytes with the same Message-ID. Mailing mail is rendered per recipient at sending time from
  the stored mailing.
- At least once from the outbox engine; no second copy after a restart: once the SMTP server has
  accepted a mail a "mail-sent" record names its job, and a job found sent is not sent again (the
  only window left is between the server's 250 and that write).
- Without `smtp_url` mail waits in the outbox (nothing is attempted) until a server is configured;
  `livecart demo` points it at a local catcher (catcher.py) whose mail `/admin` shows.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from aiohttp import web

from ..appkeys import CONFIG, ROOMS, STORE
from ..config import Config
from ..outbox import Outbox, Outcome, now_ms
from ..store import Store
from ..tasks import cancel_and_wait
from . import smtp
from .catcher import Catcher
from .compose import build, envelope

log = logging.getLogger("livecart.mail")

MAIL_KIND = "mail-outbox"  # order mail
BULK_KIND = "mailing-outbox"  # mailings
SENT = "mail-sent"  # job id -> {at, messageId}: accepted by the SMTP server
SENT_TTL = 60 * 24 * 3600
ORDER_CONCURRENCY = 1  # one at a time, oldest first: "confirmed" goes before "on its way"
BULK_CONCURRENCY = 8


@dataclass
class MailService:
    """What the routes and the order flow use: queue order mail, run mailings, see the outboxes."""

    config: Config
    store: Store
    sender: smtp.SmtpSender | None = None
    catcher: Catcher | None = None
    render_bulk: Callable[[dict[str, Any]], Any] | None = None  # set by mailings: job -> mail dict or reason
    outbox: Outbox = field(init=False)
    bulk: Outbox = field(init=False)

    def __post_init__(self) -> None:
        c = self.config
        # A leased mail comes due again this long after its attempt began if its worker died: twice
        # the time an attempt may take, so a live worker has always finished first.
        lease = lambda: 2 * c.smtp_timeout + 1  # noqa: E731
        self.outbox = Outbox(self.store, MAIL_KIND, self._deliver_order, retry_base=c.mail_retry_base,
                             max_age=c.mail_max_age, lease_seconds=lease, concurrency=ORDER_CONCURRENCY,
                             name="mail")
        self.bulk = Outbox(self.store, BULK_KIND, self._deliver_bulk, retry_base=c.mail_retry_base,
                           max_age=c.mail_max_age, lease_seconds=lease, concurrency=BULK_CONCURRENCY,
                           rate=c.mailing_rate, name="mailing")

    @property
    def mail_from(self) -> str:
        return self.config.mail_from

    async def _send_once(self, job: dict[str, Any], mail: dict[str, Any]) -> Outcome:
        if self.sender is None:
            return Outcome(False, "no SMTP server configured")
        if await self.store.get_record(SENT, job["id"]) is not None:
            return Outcome(True, "sent before")  # a copy a crash left behind
        outcome = await self.sender.send(*envelope(mail, self.mail_from), build(mail, self.mail_from))
        if outcome.ok:
            await self.store.put_record(SENT, job["id"], {"at": now_ms(), "messageId": mail["messageId"]},
                                        ttl=SENT_TTL)
        return outcome

    async def _deliver_order(self, job: dict[str, Any], attempt: int) -> Outcome:
        return await self._send_once(job, job["data"])

    async def _deliver_bulk(self, job: dict[str, Any], attempt: int) -> Outcome:
        assert self.render_bulk is not None
        mail = await self.render_bulk(job)
        if isinstance(mail, Outcome):  # not to be sent (unsubscribed meanwhile, mailing gone)
            return mail
        return await self._send_once(job, mail)

    async def outboxes(self) -> dict[str, Any]:
        """Pending and dead mail per outbox (for operators and tests)."""
        out: dict[str, Any] = {}
        for name, box in (("orders", self.outbox), ("mailings", self.bulk)):
            jobs, dead = await box.jobs(), await box.dead()
            out[name] = {"pending": len(jobs),
                         "dead": [{"id": d["id"], "type": d["type"], "lastError": d.get("lastError", "")}
                                  for d in dead.values()][:100]}
        return out


MAIL: web.AppKey[MailService] = web.AppKey("mail", MailService)


async def mail_worker(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the mail service, its outbox workers (when there is an SMTP server to send to),
    the demo catcher, and the mailings that were being queued when the last process stopped."""
    from . import mailings

    config: Config = app[CONFIG]
    service = MailService(config, app[STORE])
    app[MAIL] = service
    if config.mail_catcher and not config.smtp_url:
        service.catcher = await Catcher.start("127.0.0.1", 0)
        config.smtp_url = f"smtp://127.0.0.1:{service.catcher.port}"
        log.info("demo mail catcher on %s: caught mail shows on /admin", config.smtp_url)
    tasks: list[asyncio.Future[Any]] = []
    runner = mailings.Mailings(service, app[ROOMS].bus)
    app[mailings.MAILINGS] = runner
    if config.smtp_url:
        service.sender = smtp.SmtpSender(smtp.SmtpTarget.parse(config.smtp_url), config.smtp_timeout)
        tasks += [asyncio.ensure_future(service.outbox.run()), asyncio.ensure_future(service.bulk.run())]
    else:
        log.info("no --smtp-url: mail waits in the outbox")
    tasks.append(asyncio.ensure_future(runner.run()))
    yield
    await cancel_and_wait(*tasks)
    if service.sender is not None:
        await service.sender.close()
    if service.catcher is not None:
        await service.catcher.stop()


def public_url(config: Config) -> str:
    """The base of links in mail."""
    return (config.public_url or f"http://{config.host}:{config.port}").rstrip("/")


