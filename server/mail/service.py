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
from typing import Any, Awaitable, Callable

from ..catalog import CatalogCache
from ..clock import now_ms
from ..config import Config
from ..outbox import Outbox, Outcome
from ..store import Store
from ..store.index import ShopIndex
from ..tasks import cancel_and_wait
from . import orders, smtp
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
    """Order mail and the outboxes mail leaves from; mailings (mailings.py) put their jobs in `bulk`."""

    config: Config
    store: Store
    catalog: CatalogCache
    index: ShopIndex  # the customers' profiles: email, name, marketing consent
    sender: smtp.SmtpSender | None = None
    catcher: Catcher | None = None
    render_bulk: Callable[[dict[str, Any]], Awaitable[dict[str, Any] | Outcome]] | None = None  # mailings'
    outbox: Outbox = field(init=False)
    bulk: Outbox = field(init=False)
    _tasks: list[asyncio.Future[Any]] = field(default_factory=list)

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

    # -- order mail ---------------------------------------------------------------------------------

    async def order_changed(self, order: dict[str, Any]) -> str:
        """Queues the mail for the order's new status, if it has one; returns the job id ("" when none).

        Called by the order flow after the order record was written, like the webhook (a crash
        before this loses the mail as it loses the webhook)."""
        status = orders.status_of(order)
        if status not in orders.MAILS:
            return ""
        email, name = await orders.contact(self.index, order)
        if not email:
            log.info("order %s is %s: no email to write to", orders.id_of(order), status)
            return ""
        try:
            job_id, mail = orders.compose(self.config, self.catalog, order, email, name)
        except Exception:  # a template that fails must not fail the payment or the dispatch
            log.exception("order %s: mail not composed", orders.id_of(order))
            return ""
        return await self.outbox.put(f"order.{orders.MAILS[status][0]}", mail, job_id)

    # -- sending ------------------------------------------------------------------------------------

    async def _send_once(self, job: dict[str, Any], mail: dict[str, Any]) -> Outcome:
        if self.sender is None:
            return Outcome(False, "no SMTP server configured")
        if await self.store.get_record(SENT, job["id"]) is not None:
            return Outcome(True, "sent before")  # a copy a crash left behind
        outcome = await self.sender.send(*envelope(mail, self.config.mail_from), build(mail, self.config.mail_from))
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

    # -- running --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """The demo catcher (when asked for and no SMTP server is given) and the outbox workers (when
        there is an SMTP server to send to)."""
        config = self.config
        if config.mail_catcher and not config.smtp_url:
            self.catcher = await Catcher.start("127.0.0.1", 0)
            config.smtp_url = f"smtp://127.0.0.1:{self.catcher.port}"
            log.info("demo mail catcher on %s: caught mail shows on /admin", config.smtp_url)
        if not config.smtp_url:
            log.info("no --smtp-url: mail waits in the outbox")
            return
        self.sender = smtp.SmtpSender(smtp.SmtpTarget.parse(config.smtp_url), config.smtp_timeout)
        self._tasks = [asyncio.ensure_future(self.outbox.run()), asyncio.ensure_future(self.bulk.run())]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        if self.sender is not None:
            await self.sender.close()
        if self.catcher is not None:
            await self.catcher.stop()

