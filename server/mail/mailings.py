"""Mailings to a customer segment: queued into the mailing outbox, sent at a set pace, with progress.

- `create` resolves the segment to a fixed recipient list (kept in the store), stores the mailing
  and returns at once; `queue` then puts one job per recipient into the mailing outbox, whose
  workers send at `mailing_rate` per second. Jobs have derived keys (mailing, index), so queuing
  again after a crash writes the same records: a restart resumes (`run` finishes any mailing whose
  queuing was cut short) and nobody gets one mailing twice (the mail-sent record, see service.py).
- Each mail carries `List-Unsubscribe` (the one-click URL and a mailto) and
  `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058); consent is checked again just
  before each mail, so an unsubscribe in the middle of a mailing holds.
- Progress `{status, total, sent, failed}` is counted from the store (any process may send), and
  published as `mailing.progress` on the shop-floor feed while it moves.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from ..bus import Bus
from ..feeds import shop_event
from ..clock import now_ms
from ..outbox import Outcome
from ..store import LockBusy, held_lock
from ..tasks import cancel_and_wait
from .compose import domain_of, message_id, render
from .segments import Recipient, Segment, consents
from .orders import public_url
from .service import SENT, MailService
from .tokens import unsubscribe_token

log = logging.getLogger("livecart.mail")

MAILING = "mailing"  # id -> the mailing
RECIPIENTS = "mailing-recipients"  # id -> {"recipients": [[customerId, email, name], …]}
QUEUE_CHUNK = 500  # jobs queued between two saves of the mailing's queuing cursor
PROGRESS_EVERY = 0.5  # seconds between two progress events of a mailing
MAX_SUBJECT, MAX_TEXT = 200, 50_000


class NoRecipients(ValueError):
    """The segment has nobody with marketing consent and an email."""


def job_prefix(mailing_id: str) -> str:
    return f"mlg-{mailing_id}-"


@dataclass
class Mailings:
    """Runs in every process: queues mailings, renders their mail, publishes their progress."""

    service: MailService
    bus: Bus
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)  # mailing id -> the stored mailing
    moving: set[str] = field(default_factory=set)  # mailings with mail sent since the last progress event
    queuing: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _runner: asyncio.Future[None] | None = None

    def __post_init__(self) -> None:
        self.service.render_bulk = self.render
        self.service.bulk.on_done.append(lambda job, _: self.moving.add(job["data"]["mailingId"]))

    @property
    def store(self):  # noqa: ANN201
        return self.service.store

    async def create(self, subject: str, text: str, segment: Segment, recipients: list[Recipient],
                     by: str) -> dict[str, Any]:
        """Stores a mailing to `recipients` and starts queuing it; returns the stored mailing."""
        if not recipients:
            raise NoRecipients("nobody in this segment has marketing consent and an email")
        mailing_id = "m-" + secrets.token_hex(8)
        await self.store.put_record(RECIPIENTS, mailing_id, {
            "recipients": [[r.customer_id, r.email, r.name] for r in recipients]})
        mailing = {"id": mailing_id, "subject": subject, "text": text, "segment": segment.to_json(),
                   "total": len(recipients), "queued": 0, "status": "sending", "createdAt": now_ms(), "by": by}
        await self.store.put_record(MAILING, mailing_id, mailing)
        self._queue_soon(mailing)
        return mailing

    def _queue_soon(self, mailing: dict[str, Any]) -> None:
        if mailing["id"] not in self.queuing:
            task = asyncio.ensure_future(self._queue(mailing["id"]))
            self.queuing[mailing["id"]] = task
            task.add_done_callback(lambda _: self.queuing.pop(mailing["id"], None))

    async def _queue(self, mailing_id: str) -> None:
        """Puts the mailing's jobs into the outbox from where queuing stopped (one process at a time)."""
        try:
            async with held_lock(self.store, f"mailing-queue:{mailing_id}", wait=0.5, ttl=120):
                mailing = await self.store.get_record(MAILING, mailing_id)
                if mailing is None or mailing["queued"] >= mailing["total"]:
                    return
                recipients = (await self.store.get_record(RECIPIENTS, mailing_id) or {}).get("recipients", [])
                start = mailing["queued"]
                for index in range(start, len(recipients)):
                    customer_id, email, name = recipients[index]
                    await self.service.bulk.put("mailing", {"mailingId": mailing_id, "customerId": customer_id,
                                                            "email": email, "name": name},
                                                job_id=f"{job_prefix(mailing_id)}{index}",
                                                created=mailing["createdAt"], seq=index)
                    if (index + 1) % QUEUE_CHUNK == 0 or index + 1 == len(recipients):
                        mailing = {**mailing, "queued": index + 1}
                        await self.store.put_record(MAILING, mailing_id, mailing)
                log.info("mailing %s: %d mails queued", mailing_id, mailing["queued"])
        except LockBusy:
            return  # another process is queuing it
        except Exception as exc:  # storage away: the next round of `run` tries again
            log.warning("mailing %s: queuing stopped: %s", mailing_id, exc)

    # -- sending ----------------------------------------------------------------------------------

    async def _mailing(self, mailing_id: str) -> dict[str, Any] | None:
        mailing = self.cache.get(mailing_id)
        if mailing is None:
            mailing = await self.store.get_record(MAILING, mailing_id)
            if mailing is not None:
                self.cache[mailing_id] = mailing
        return mailing

    async def render(self, job: dict[str, Any]) -> dict[str, Any] | Outcome:
        """One recipient's mail, or why it is not sent."""
        data = job["data"]
        mailing = await self._mailing(data["mailingId"])
        if mailing is None:
            return Outcome(False, "mailing gone", permanent=True)
        if not await consents(self.service.index, data["customerId"]):
            return Outcome(False, "unsubscribed", permanent=True)
        config = self.service.config
        unsubscribe = f"{public_url(config)}/unsubscribe?t={unsubscribe_token(config.jwt_secret, data['customerId'])}"
        text, html = render("mailing", name=data["name"], text=mailing["text"], subject=mailing["subject"],
                            unsubscribe_url=unsubscribe, shop="livecart")
        to = f"{data['name']} <{data['email']}>" if data["name"] else data["email"]
        mailto = f"mailto:unsubscribe@{domain_of(config.mail_from)}?subject=unsubscribe%20{data['customerId']}"
        return {"to": to, "subject": mailing["subject"], "text": text, "html": html,
                "messageId": message_id(job["id"], config.mail_from), "date": now_ms(),
                "headers": {"List-Unsubscribe": f"<{unsubscribe}>, <{mailto}>",
                            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                            "List-Id": f"livecart mailings <mailings.{domain_of(config.mail_from)}>",
                            "Precedence": "bulk", "X-Livecart-Mailing": data["mailingId"]}}

    # -- progress -----------------------------------------------------------------------------

    async def progress(self, mailing_id: str) -> dict[str, Any] | None:
        mailing = await self.store.get_record(MAILING, mailing_id)
        if mailing is None:
            return None
        prefix = job_prefix(mailing_id)
        sent = len(await self.store.list_records(SENT, prefix))
        failed = len(await self.service.bulk.dead(prefix))
        status = mailing["status"]
        if status == "sending" and sent + failed >= mailing["total"]:
            status = "done"
            await self.store.put_record(MAILING, mailing_id, {**mailing, "status": "done", "doneAt": now_ms()})
        return {"mailingId": mailing_id, "status": status, "total": mailing["total"], "sent": sent,
                "failed": failed, "queued": mailing["queued"], "subject": mailing["subject"],
                "createdAt": mailing["createdAt"]}

    async def list(self) -> list[dict[str, Any]]:
        mailings = sorted((await self.store.list_records(MAILING)).values(), key=lambda m: -m["createdAt"])
        return [{"mailingId": m["id"], "status": m["status"], "total": m["total"], "subject": m["subject"],
                 "createdAt": m["createdAt"]} for m in mailings[:50]]

    async def start(self) -> None:
        self._runner = asyncio.ensure_future(self.run())

    async def stop(self) -> None:
        await cancel_and_wait(*([self._runner] if self._runner else []), *self.queuing.values())

    async def run(self) -> None:
        """Publishes progress of mailings that move; resumes queuing cut short by a restart."""
        rounds = 0
        while True:
            with suppress(Exception):
                if rounds % 20 == 0:  # every 10 s: mailings whose queuing stopped (a crash, an outage)
                    for mailing in (await self.store.list_records(MAILING)).values():
                        if mailing["status"] == "sending" and mailing["queued"] < mailing["total"]:
                            self._queue_soon(mailing)
                moving, self.moving = self.moving, set()
                for mailing_id in moving:
                    progress = await self.progress(mailing_id)
                    if progress is not None:
                        shop_event(self.bus, "mailing.progress", **progress)
            rounds += 1
            await asyncio.sleep(PROGRESS_EVERY)

