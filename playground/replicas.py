"""Several app processes on one PostgreSQL history: each job has an owner, callbacks reach it, the dead are replaced.

- **Owner and lease.** The replica that records a job owns it; its lease runs out ``lease_s`` after that unless
  renewed. While a job is waited for here (it is in this process's inbox), ``heartbeat`` renews the lease
  every third of ``lease_s``.
- **Callbacks to any replica.** A delivery for a job another replica waits for is verified here (the service
  does that), kept in ``deliveries`` and announced with NOTIFY in the same transaction; the owner, listening,
  wakes its waiter at once, with no status read when the delivery was signed. A waiter registering late looks
  for deliveries that came before it (``ReplicaInbox``), so none is missed.
- **Takeover.** Jobs whose lease ran out (their replica died) are claimed with ``FOR UPDATE SKIP LOCKED`` by
  one live replica and resumed by task id: nothing is ever submitted again. Jobs that died before they had a
  task id cannot be found again and are marked failed, as at a single process's restart.

A single process with SQLite never loads this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from typing import Any

import psycopg

from playground.errors import PlaygroundError, StoreError
from playground.history import PostgresHistory
from playground.history.leases import CHANNEL, Delivery, SharedJobs
from playground.inbox import Inbox, Waiter
from playground.models import TERMINAL_STATES, JobRef
from playground.providers.base import CallbackUpdate
from playground.service import ABANDONED, GenerationService

log = logging.getLogger(__name__)

RECONNECT_S = 1.0  # after the LISTEN connection drops, try again this soon


class ReplicaInbox(Inbox):
    """The process's inbox; a waiter that registers also gets any delivery that reached another replica first."""

    def __init__(self, shared: SharedJobs) -> None:
        super().__init__()
        self.shared = shared
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, provider: str, task_id: str) -> Waiter:
        waiter = super().register(provider, task_id)
        self.spawn(self.catch_up(provider, task_id, waiter))
        return waiter

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` in the background, keeping a reference until it is done."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def catch_up(self, provider: str, task_id: str, waiter: Waiter) -> None:
        try:
            found = await self.shared.latest_delivery(provider, task_id)
        except (psycopg.Error, StoreError) as exc:  # the job still polls; the next notification may still come
            log.warning("could not look for callbacks of %s task %s: %s", provider, task_id, exc)
            return
        if found is not None:
            waiter.deliver(found.status)


class Replicas:
    """This process's part in the shared work: relay of callbacks, heartbeat, listener, takeover."""

    def __init__(self, store: PostgresHistory) -> None:
        self.store = store
        self.shared = SharedJobs(store)
        self.inbox = ReplicaInbox(self.shared)
        self.service: GenerationService | None = None
        self._running: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()

    @property
    def every_s(self) -> float:
        """How often leases are renewed and expired ones looked for: a third of the lease."""
        return self.store.lease_s / 3

    def attach(self, service: GenerationService) -> None:
        """Serve ``service``: its callbacks for other replicas' jobs are handed over here."""
        self.service = service
        service.relay = self

    # --- callbacks for another replica's job -----------------------------------------------------------

    async def hand_over(self, provider: str, update: CallbackUpdate) -> tuple[int, str]:
        """Keep a verified delivery for the job's owner and wake it (NOTIFY); the answer for the provider."""
        state = await self.shared.state_of(provider, update.task_id)
        if state is None:
            log.warning("ignored a %s callback for task %s, which no replica knows", provider, update.task_id)
            return 404, "unknown task"
        kept = await self.shared.keep_delivery(provider, update.task_id, update.delivery_id, update.status)
        if not kept:
            return 200, "duplicate"
        return 200, "already finished" if state in TERMINAL_STATES else "handed to the replica waiting for it"

    async def on_delivery(self, delivery: Delivery) -> None:
        """A delivery was kept by some replica: wake our waiter for it, if this process has one."""
        waiter = self.inbox.waiter(delivery.provider, delivery.task_id)
        if waiter is not None:
            waiter.deliver(delivery.status)

    # --- the loops -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Listen, renew and take over until cancelled (the app runs this in the background)."""
        self._running = [asyncio.ensure_future(self.listen()), asyncio.ensure_future(self.heartbeat())]
        try:
            await asyncio.gather(*self._running)
        except Exception:  # nobody awaits this in the app: say why the replica stopped sharing the work
            log.exception("the replica's listener or heartbeat stopped")
            raise
        finally:
            for task in self._running:
                task.cancel()

    async def aclose(self) -> None:
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def listen(self) -> None:
        """LISTEN on a connection of its own (autocommit: a LISTEN inside a transaction waits for its commit)."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.store.url, autocommit=True) as db:
                    await db.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    await self.catch_up_all()  # deliveries kept while we were not listening
                    async for note in db.notifies():
                        await self._notified(note.payload)
            except (psycopg.Error, StoreError, OSError) as exc:
                self._listening.clear()
                log.warning("lost the LISTEN connection (%s); listening again in %g s", exc, RECONNECT_S)
                await asyncio.sleep(RECONNECT_S)

    async def listening(self) -> None:
        """Return once the listener is connected (tests and startup)."""
        await self._listening.wait()

    async def _notified(self, payload: str) -> None:
        try:
            found = await self.shared.delivery(int(json.loads(payload)["id"]))
        except (ValueError, KeyError, TypeError, psycopg.Error, StoreError) as exc:
            log.warning("could not read a delivery notice %r: %s", payload[:80], exc)
            return
        if found is not None:
            await self.on_delivery(found)

    async def catch_up_all(self) -> None:
        for provider, task_id in self.inbox.waiting():
            found = await self.shared.latest_delivery(provider, task_id)
            if found is not None:
                await self.on_delivery(found)

    async def heartbeat(self) -> None:
        """Every third of the lease: renew ours, fail the unsubmitted jobs of the dead, take over the rest."""
        while True:
            try:
                await self.shared.renew(self.inbox.waiting())
                await self.take_over()
            except (psycopg.Error, StoreError, OSError) as exc:
                log.warning("could not renew leases or look for expired ones: %s", exc)
            await asyncio.sleep(self.every_s)

    async def take_over(self) -> list[asyncio.Task[None]]:
        """Claim the jobs of replicas whose leases ran out and wait for them here, by task id (one task a run)."""
        await self.store.abandon_unsubmitted(ABANDONED, expired_only=True)
        runs: dict[str, list[JobRef]] = {}
        for found in await self.shared.claim_expired():
            runs.setdefault(found.run_id, []).append(found.job)
        waits = []
        for run_id, jobs in runs.items():
            log.info("taking over %d job(s) of run %s from a replica whose lease ran out", len(jobs), run_id)
            waits.append(self.inbox.spawn(self.finish(run_id, jobs)))
        return waits

    async def finish(self, run_id: str, jobs: list[JobRef]) -> None:
        """Wait for claimed jobs by task id until they end (their events are recorded as they pass)."""
        assert self.service is not None, "attach() a service first"
        try:
            async with contextlib.aclosing(self.service.resume(jobs, run_id=run_id)) as events:
                async for event in events:
                    if event.is_terminal:
                        log.info("took over %s %s: %s", event.key, event.task_id, event.message)
        except PlaygroundError as exc:  # no key for it here, say: let it be, for someone who has one
            log.warning("cannot follow the jobs of run %s here (%s); releasing them", run_id, exc)
            await self.shared.release(jobs)
