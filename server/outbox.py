"""The persisted outbox engine: jobs kept in the store, delivered at least once with exponential back-off.

Webhooks and mail each run one (or more) `Outbox`es over it; the engine knows nothing of what a job
is, only how to keep it until its `deliver` function says it is done:

- A job is a record `{"id", "type", "createdAt", "seq", "data", "attempts"}` of the outbox's record
  kind (so SQLite and Redis alike), under the key `f"{due_ms:013d}|{job_id}|{nonce}"`.
- To make an attempt a worker first writes a leased copy due at now + lease (a process dying
  mid-delivery leaves a copy that comes due again), then `take_record`s the key it saw: of several
  processes one wins and makes the attempt, the others delete their copy. After the attempt the
  lease is replaced by a retry (or deleted on success). A crash can repeat an attempt, never lose a
  job; `deliver` is given the attempt number and the job id to recognise a repeat.
- A failed attempt is retried after `retry_base * 2**(attempt-1)` seconds (+0-20 % jitter, at most
  RETRY_CAP) until the job is `max_age` seconds old (0: forever) or `deliver` says the failure is
  permanent; then it moves to the dead-letter kind and is logged.
- Each worker makes at most `concurrency` attempts at once, oldest job first, and starts at most
  `rate` per second (0: no limit) so a bulk job (a mailing) keeps a pace a mail server accepts.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from . import logs
from .metrics import NO_METRICS
from .clock import now_ms
from .store import Store

log = logging.getLogger("livecart.outbox")

RETRY_CAP = 300.0  # longest wait between two attempts
POLL_SECONDS = 1.0  # how often a worker looks for jobs other processes wrote
DEAD_TTL = 30 * 24 * 3600  # dead letters are kept this long for inspection

_made = itertools.count()  # orders jobs made in the same millisecond by one process


def failure_kind(detail: str) -> str:
    """A failed attempt's outcome as a bounded label: `http_503`, `timeout`, or the error's class."""
    if detail.startswith("HTTP "):
        return "http_" + detail[5:8]
    if detail.startswith("no answer"):
        return "timeout"
    return detail.partition(":")[0].partition(" ")[0][:40] or "error"


def job_key(due_ms: int, job_id: str, nonce: str) -> str:
    return f"{due_ms:013d}|{job_id}|{nonce}"


def backoff(base: float, attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, …): doubling, jittered, capped."""
    return min(RETRY_CAP, base * 2 ** min(attempt - 1, 40) * random.uniform(1.0, 1.2))


@dataclass(frozen=True)
class Outcome:
    """What one attempt decided: delivered, or why not and whether trying again can help."""

    ok: bool
    detail: str = ""
    permanent: bool = False


Deliver = Callable[[dict[str, Any], int], Awaitable[Outcome]]  # (job, attempt number) -> outcome


class Pace:
    """At most `rate` starts per second (a token bucket of one second's worth); 0: no limit."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = 0.0

    async def wait(self) -> None:
        if self.rate <= 0:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next = max(self._next, now - 1.0)  # idle time earns at most a one-second burst
        self._next += 1.0 / self.rate
        if self._next > now:
            await asyncio.sleep(self._next - now)


@dataclass
class Outbox:
    """One persisted queue of jobs (records of `kind`) and the worker loop that delivers them."""

    store: Store
    kind: str
    deliver: Deliver
    dead_kind: str = ""
    retry_base: float = 0.5
    max_age: float = 3 * 24 * 3600  # a job failing this long after it was made is dropped; 0: never
    lease_seconds: Callable[[], float] = lambda: 30.0  # a leased job comes due again after this
    concurrency: int = 1
    rate: float = 0.0
    name: str = ""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: set[str] = field(default_factory=set)  # job ids this worker is attempting now
    on_done: list[Callable[[dict[str, Any], Outcome], None]] = field(default_factory=list)
    metrics: Any = NO_METRICS  # the app's (server/metrics.py): failures by outcome

    def __post_init__(self) -> None:
        self.dead_kind = self.dead_kind or f"{self.kind}-dead"
        self.name = self.name or self.kind
        self.pace = Pace(self.rate)

    # -- writing ------------------------------------------------------------------------------

    async def put(self, job_type: str, data: dict[str, Any], job_id: str = "", *,
                  created: int | None = None, seq: int | None = None) -> str:
        """Persists one job and returns its id; once this returns the job survives a restart.

        Given the same `job_id`, `created` and `seq`, putting again writes the same record (the key
        is derived from them): a writer that may repeat itself after a crash makes no second job.
        """
        created = now_ms() if created is None else created
        job_id = job_id or f"job_{created:012x}{secrets.token_hex(8)}"
        job = {"id": job_id, "type": job_type, "createdAt": created,
               "seq": next(_made) if seq is None else seq, "data": data, "attempts": 0}
        await self.store.put_record(self.kind, job_key(created, job_id, "new"), job)
        self.wake.set()
        return job_id

    async def jobs(self) -> dict[str, dict[str, Any]]:
        """The stored jobs by id (a leased job may briefly have two copies: the latest wins)."""
        return {job["id"]: job for job in (await self.store.list_records(self.kind)).values()}

    async def dead(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        return await self.store.list_records(self.dead_kind, prefix)

    # -- delivering ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Delivers for ever (cancel to stop): every due job, then waits for the next or a wake-up."""
        while True:
            self.wake.clear()
            try:
                wait = await self.deliver_due()
            except Exception as exc:  # storage away: try again shortly
                log.warning("%s outbox round failed: %s", self.name, exc)
                wait = POLL_SECONDS
            if wait > 0:
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), min(wait, POLL_SECONDS))

    async def deliver_due(self) -> float:
        """Attempts every job due now, oldest first; returns the seconds until the next one is due."""
        records = await self.store.list_records(self.kind)
        now = now_ms()
        due: list[tuple[int, int, str, dict[str, Any]]] = []
        next_due: int | None = None
        for key, job in records.items():
            try:
                due_ms = int(key.split("|", 1)[0])
            except ValueError:
                continue
            if due_ms <= now:
                due.append((int(job.get("createdAt", 0)), int(job.get("seq", 0)), key, job))
            elif next_due is None or due_ms < next_due:
                next_due = due_ms
        due.sort(key=lambda d: (d[0], d[1]))
        if self.concurrency <= 1:
            for _, _, key, job in due:
                await self.pace.wait()
                await self.attempt(key, job)
        elif due:
            await self._attempt_many([(key, job) for _, _, key, job in due])
        if due:
            return 0.0  # look again at once: failures were rescheduled, new jobs may have come
        return POLL_SECONDS if next_due is None else max(0.0, (next_due - now_ms()) / 1000)

    async def _attempt_many(self, due: list[tuple[str, dict[str, Any]]]) -> None:
        """`concurrency` workers take the due jobs in order, each paced by the outbox's rate."""
        queue = iter(due)

        async def worker() -> None:
            for key, job in queue:
                await self.pace.wait()
                await self.attempt(key, job)
        workers = [asyncio.ensure_future(worker()) for _ in range(min(self.concurrency, len(due)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()

    async def attempt(self, key: str, job: dict[str, Any]) -> Outcome | None:
        """One attempt at one job seen under `key`; None when another worker had it."""
        store = self.store
        if job["id"] in self.in_flight:  # a second copy of a job this worker is attempting now
            return None
        attempt = int(job.get("attempts", 0)) + 1
        leased = {**job, "attempts": attempt}
        lease_key = job_key(now_ms() + int(self.lease_seconds() * 1000), job["id"], secrets.token_hex(4))
        # Lease first, claim second: a crash in between leaves a duplicate, never a loss.
        await store.put_record(self.kind, lease_key, leased)
        if await store.take_record(self.kind, key) is None:  # another worker claimed this attempt
            await store.delete_record(self.kind, lease_key)
            return None
        self.in_flight.add(job["id"])
        try:
            try:
                outcome = await self.deliver(leased, attempt)
            except asyncio.CancelledError:
                await self._give_back(lease_key, leased)
                raise
            except Exception as exc:  # a bug or an outage in deliver: retried like any failure
                log.exception("%s job %s: delivery raised", self.name, job["id"])
                outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
            await self._settle(lease_key, leased, attempt, outcome)
        finally:
            self.in_flight.discard(job["id"])
        for listener in self.on_done:
            listener(leased, outcome)
        return outcome

    async def _settle(self, lease_key: str, job: dict[str, Any], attempt: int, outcome: Outcome) -> None:
        store = self.store
        if outcome.ok:
            await store.delete_record(self.kind, lease_key)
            log.debug("%s %s %s delivered (attempt %d)", self.name, job["type"], job["id"], attempt)
            return
        self.metrics.outbox_failed(self.name or self.kind, failure_kind(outcome.detail))
        age = (now_ms() - int(job.get("createdAt", 0))) / 1000
        if outcome.permanent or (self.max_age and age > self.max_age):
            await store.put_record(self.dead_kind, job["id"], {**job, "lastError": outcome.detail}, ttl=DEAD_TTL)
            await store.delete_record(self.kind, lease_key)
            logs.event(f"{self.name or self.kind}.dropped", logging.ERROR, type=job["type"], id=job["id"],
                       attempts=attempt, ageSeconds=round(age), lastError=outcome.detail, keptAs=self.dead_kind)
            return
        delay = backoff(self.retry_base, attempt)
        retry = {**job, "lastError": outcome.detail}
        await store.put_record(self.kind, job_key(now_ms() + int(delay * 1000), job["id"], secrets.token_hex(4)),
                               retry)
        await store.delete_record(self.kind, lease_key)
        logs.event(f"{self.name or self.kind}.retry", type=job["type"], id=job["id"], attempt=attempt,
                   error=outcome.detail, nextInSeconds=round(delay, 1))

    async def _give_back(self, lease_key: str, job: dict[str, Any]) -> None:
        """On shutdown mid-attempt: due again at once instead of when the lease runs out."""
        with suppress(Exception):
            await self.store.put_record(self.kind, job_key(now_ms(), job["id"], secrets.token_hex(4)), job)
            await self.store.delete_record(self.kind, lease_key)
